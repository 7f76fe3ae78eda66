// One photo of the studio's list and its colour hints, with undo; no DOM here.
//
// Hints are kept exactly as the hints file of `jaxcolor colorize --hints` holds them
// (jaxcolor/inference/hints.py): {x, y, color: "#rrggbb", radius} in the photo's own pixel
// coordinates, x to the right and y down from the top-left pixel's centre.

export class Photo {
  constructor(file, id) {
    this.file = file;
    this.id = id;
    this.name = file.name || `photo-${id}`;
    this.width = null;   // the uploaded photo's size, known after its first preview
    this.height = null;
    this.hints = [];
    this.history = [];   // earlier hint lists, newest last
    this.status = "waiting";  // waiting | colouring | done | failed
    this.error = "";
    this.preview = null;  // {bitmap, pixels: ImageData, url} of the colour preview
  }

  get stem() {
    return this.name.replace(/\.[^.]*$/, "") || this.name;
  }

  // Every change below keeps the previous hints for `undo`; a gesture of many small changes
  // (a drag, the colour picker's live updates) calls `remember` once at its start instead.
  remember() {
    this.history.push(this.hints.map((hint) => ({...hint})));
  }

  undo() {
    if (!this.history.length) return false;
    this.hints = this.history.pop();
    return true;
  }

  add(hint) {
    this.remember();
    this.hints.push(this.inside(hint));
    return this.hints.length - 1;
  }

  update(index, changes) {
    this.hints[index] = this.inside({...this.hints[index], ...changes});
  }

  remove(index) {
    this.remember();
    this.hints.splice(index, 1);
  }

  reset() {
    if (!this.hints.length) return;
    this.remember();
    this.hints = [];
  }

  // A hint moved onto the photo's pixel grid (whole pixels, inside the photo).
  inside(hint) {
    const clamp = (v, high) => Math.min(Math.max(Math.round(v), 0), high);
    return {...hint, x: clamp(hint.x, this.width - 1), y: clamp(hint.y, this.height - 1)};
  }

  // The hints file of this photo: {name: [hints]}, for `jaxcolor colorize --hints`.
  hintsDocument() {
    return {[this.name]: this.hints.map(({x, y, color, radius}) => ({x, y, color, radius}))};
  }
}

// The hints file of several photos (those with hints), for "Download all".
export function hintsDocument(photos) {
  return Object.assign({}, ...photos.filter((p) => p.hints.length).map((p) => p.hintsDocument()));
}
