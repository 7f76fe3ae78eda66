// The photo on screen: gray | colour with the before/after slider, and its colour hints as
// markers to place (click), move (drag, or arrow keys), recolour and remove.

import {colourAt, toGray} from "./pixels.js";

const DRAG_SLOP = 4;  // pointer travel (CSS px) below which a press is a click, not a drag

export class Editor {
  // onChange(photo): the photo's hints changed. defaultRadius: a new hint's radius.
  constructor({onChange, defaultRadius}) {
    this.onChange = onChange;
    this.defaultRadius = defaultRadius;
    this.photo = null;
    this.pixels = null;  // ImageData of the colour preview on screen
    this.selected = null;  // index of the hint in the panel
    this.gesture = false;  // a drag or live colour edit in progress (one undo step)
    this.el = Object.fromEntries(["editor", "stage", "gray", "colour", "markers", "spinner",
      "compare", "hint-panel", "hint-color", "hint-radius", "hint-remove", "hint-close"]
      .map((id) => [id, document.getElementById(id)]));
    this.wire();
  }

  wire() {
    const {stage, compare} = this.el;
    compare.addEventListener("input", () => stage.style.setProperty("--split",
                                                                    `${compare.value}%`));
    window.addEventListener("resize", () => this.fit());
    stage.addEventListener("click", (event) => {
      if (!event.target.closest(".marker") && this.pixels) this.addAt(event);
    });
    this.el["hint-color"].addEventListener("input", (e) => this.edit({color: e.target.value}));
    this.el["hint-radius"].addEventListener("input", (e) => {
      const radius = Number(e.target.value);
      if (e.target.value !== "" && radius >= 0) this.edit({radius});
    });
    for (const id of ["hint-color", "hint-radius"]) {
      this.el[id].addEventListener("change", () => { this.gesture = false; });
    }
    this.el["hint-remove"].addEventListener("click", () => this.remove(this.selected));
    this.el["hint-close"].addEventListener("click", () => this.select(null));
  }

  // Show `photo` (its colour preview must be there).
  async show(photo) {
    const bitmap = await createImageBitmap(photo.preview.blob);
    const {width, height} = bitmap;
    const {gray, colour} = this.el;
    for (const canvas of [gray, colour]) {
      canvas.width = width;
      canvas.height = height;
    }
    const context = colour.getContext("2d", {willReadFrequently: true});
    context.drawImage(bitmap, 0, 0);
    bitmap.close();
    this.pixels = context.getImageData(0, 0, width, height);
    gray.getContext("2d").putImageData(toGray(this.pixels), 0, 0);
    const switched = this.photo !== photo;
    this.photo = photo;
    this.el.editor.hidden = false;
    this.fit();
    if (switched) this.select(null);
    else this.render();
  }

  // Size the stage: the photo as large as the column and 75% of the window's height allow.
  fit() {
    const {stage, editor} = this.el;
    if (!this.pixels) return;
    const {width, height} = this.pixels;
    const room = Math.min(editor.clientWidth / width, window.innerHeight * 0.75 / height);
    stage.style.width = `${Math.floor(width * room)}px`;
    stage.style.height = `${Math.floor(height * room)}px`;
  }

  busy(on) {
    this.el.spinner.hidden = !on;
  }

  // The photo's pixel under a pointer event on the stage.
  pointAt(event) {
    const box = this.el.stage.getBoundingClientRect();
    const {width, height} = this.photo;
    return {x: (event.clientX - box.left) / box.width * width - 0.5,
            y: (event.clientY - box.top) / box.height * height - 0.5};
  }

  addAt(event) {
    const {x, y} = this.pointAt(event);
    this.add(x, y);
  }

  // A new hint at (x, y), preset to the colour predicted there, with its panel open.
  add(x, y) {
    const photo = this.photo;
    const at = photo.inside({x, y});
    const color = colourAt(this.pixels, at.x, at.y, photo.width, photo.height);
    const index = photo.add({...at, color, radius: this.defaultRadius});
    this.changed();
    this.select(index);
    this.el["hint-color"].focus();
  }

  edit(changes) {
    if (this.selected === null) return;
    if (!this.gesture) {
      this.photo.remember();
      this.gesture = true;
    }
    this.photo.update(this.selected, changes);
    this.changed();
  }

  undo() {
    if (!this.photo.undo()) return;
    this.select(null);
    this.changed();
  }

  reset() {
    this.photo.reset();
    this.select(null);
    this.changed();
  }

  remove(index) {
    if (index === null) return;
    this.photo.remove(index);
    this.select(null);
    this.changed();
  }

  changed() {
    this.render();
    this.onChange(this.photo);
  }

  select(index) {
    this.selected = index;
    this.gesture = false;
    const panel = this.el["hint-panel"];
    panel.hidden = index === null;
    if (index !== null) {
      const hint = this.photo.hints[index];
      this.el["hint-color"].value = hint.color;
      this.el["hint-radius"].value = String(hint.radius);
    }
    this.render();
  }

  // The markers, from the photo's hints. A marker that had the keyboard focus keeps it (a
  // preview arriving redraws them while someone moves one with the arrow keys).
  render() {
    const {markers} = this.el;
    const photo = this.photo;
    if (!photo) return;
    if (this.selected !== null && this.selected >= photo.hints.length) this.select(null);
    const focused = markers.contains(document.activeElement) ?
      document.activeElement.dataset.index : undefined;
    markers.replaceChildren(...photo.hints.map((hint, index) => this.marker(hint, index)));
    if (focused !== undefined) markers.querySelector(`[data-index="${focused}"]`)?.focus();
  }

  marker(hint, index) {
    const {width, height} = this.photo;
    const button = document.createElement("button");
    button.type = "button";
    button.className = "marker";
    button.dataset.index = String(index);
    button.setAttribute("aria-pressed", String(index === this.selected));
    button.setAttribute("aria-label",
                        `Hint ${index + 1}: ${hint.color} at ${hint.x}, ${hint.y}`);
    button.style.left = `${(hint.x + 0.5) / width * 100}%`;
    button.style.top = `${(hint.y + 0.5) / height * 100}%`;
    button.style.background = hint.color;
    button.addEventListener("pointerdown", (event) => this.drag(event, index));
    button.addEventListener("keydown", (event) => this.key(event, index));
    button.addEventListener("click", () => this.select(index));
    return button;
  }

  drag(start, index) {
    const marker = start.currentTarget;
    marker.setPointerCapture(start.pointerId);
    let moved = false;
    const move = (event) => {
      const far = Math.hypot(event.clientX - start.clientX, event.clientY - start.clientY);
      if (!moved && far < DRAG_SLOP) return;
      if (!moved) this.photo.remember();
      moved = true;
      this.photo.update(index, this.pointAt(event));
      const hint = this.photo.hints[index];
      marker.style.left = `${(hint.x + 0.5) / this.photo.width * 100}%`;
      marker.style.top = `${(hint.y + 0.5) / this.photo.height * 100}%`;
    };
    const end = () => {
      marker.removeEventListener("pointermove", move);
      if (moved) this.changed();
    };
    marker.addEventListener("pointermove", move);
    marker.addEventListener("lostpointercapture", end, {once: true});
  }

  // Arrow keys move a marker by one preview pixel (ten with Shift); Delete removes it.
  key(event, index) {
    const photo = this.photo;
    if (event.key === "Delete" || event.key === "Backspace") {
      event.preventDefault();
      this.remove(index);
      return;
    }
    const steps = {ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1]};
    if (!(event.key in steps)) return;
    event.preventDefault();
    const unit = Math.max(1, Math.round(photo.width / this.pixels.width)) *
                 (event.shiftKey ? 10 : 1);
    const [dx, dy] = steps[event.key];
    const hint = photo.hints[index];
    photo.remember();
    photo.update(index, {x: hint.x + dx * unit, y: hint.y + dy * unit});
    this.changed();  // its redraw keeps this marker focused
  }
}
