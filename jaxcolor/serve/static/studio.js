// The studio page: the list of photos, their previews, recolouring after hint changes, and
// the downloads. The server keeps nothing between requests: each request carries the photo
// (and its hints), so the page is the only place a photo's state lives.

import * as api from "./api.js";
import {Editor} from "./editor.js";
import {Photo, hintsDocument} from "./photos.js";
import {makeZip} from "./zip.js";

const PREVIEWS_AT_ONCE = 2;   // previews in flight: the rest wait here, not in the server's queue
const RECOLOUR_DELAY_MS = 300;  // hint edits within this time make one request
const MAX_PREVIEW = 2048;
const $ = (id) => document.getElementById(id);

const state = {
  health: null,
  photos: [],
  current: null,
  waiting: [],     // photos whose preview is not asked for yet
  running: 0,
  nextId: 1,
  previewSide: 1024,
  recolour: {timer: null, controller: null},
};
let editor = null;

function say(text) {
  const message = $("message");
  message.textContent = text;
  message.hidden = !text;
}

// The long side of previews: the most the window can show of a photo, in device pixels
// (rounded up, so resizing a little asks for no new sizes), within the server's limits and
// MAX_PREVIEW: beyond it a preview costs as much as the whole photo and looks no sharper.
function previewSide(limits) {
  const shown = Math.max(window.innerWidth, window.innerHeight * 0.75);
  const side = Math.ceil(shown * (window.devicePixelRatio || 1) / 256) * 256;
  return Math.min(Math.max(side, 512, limits.preview[0]), MAX_PREVIEW, limits.preview[1]);
}

// ---- the list ------------------------------------------------------------------------------

function addFiles(files) {
  for (const file of files) {
    const photo = new Photo(file, state.nextId++);
    if (file.size > state.health.limits.max_bytes) {
      photo.status = "failed";
      photo.error = `larger than the server's limit of ${state.health.limits.max_bytes} bytes`;
    } else {
      state.waiting.push(photo);
    }
    state.photos.push(photo);
  }
  renderList();
  pump();
}

function renderList() {
  $("list").replaceChildren(...state.photos.map((photo) => {
    const item = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.disabled = !photo.preview;
    button.setAttribute("aria-current", String(photo === state.current));
    if (photo.preview) {
      const thumb = document.createElement("img");
      thumb.src = photo.preview.url;
      thumb.alt = "";
      button.append(thumb);
    }
    const label = document.createElement("span");
    label.textContent = photo.name;
    const status = document.createElement("span");
    status.className = `status ${photo.status}`;
    status.textContent = photo.status === "failed" ? `failed: ${photo.error}` : photo.status;
    button.append(label, status);
    button.addEventListener("click", () => select(photo));
    item.append(button);
    return item;
  }));
  const done = state.photos.filter((p) => p.status === "done").length;
  const failed = state.photos.filter((p) => p.status === "failed").length;
  $("batch").hidden = state.photos.length === 0;
  $("count").textContent = `${done} of ${state.photos.length} coloured` +
                           (failed ? `, ${failed} failed` : "");
  $("progress").max = state.photos.length || 1;
  $("progress").value = done + failed;
  $("download-all").disabled = !state.photos.some((p) => p.preview);
}

// ---- previews ------------------------------------------------------------------------------

function pump() {
  while (state.running < PREVIEWS_AT_ONCE && state.waiting.length) {
    const photo = state.waiting.shift();
    state.running++;
    preview(photo).finally(() => {
      state.running--;
      pump();
    });
  }
}

async function preview(photo, signal) {
  photo.status = "colouring";
  renderList();
  try {
    const hints = photo.hints.length ? photo.hints : undefined;
    const result = await api.colorize(photo.file, {preview: state.previewSide, hints, signal});
    photo.width = result.width;
    photo.height = result.height;
    if (photo.preview) URL.revokeObjectURL(photo.preview.url);
    photo.preview = {blob: result.blob, url: URL.createObjectURL(result.blob)};
    photo.status = "done";
    if (!state.current || state.current === photo) await select(photo);
  } catch (error) {
    if (error.name === "AbortError") return;
    photo.status = photo.preview ? "done" : "failed";
    photo.error = error.message;
    if (photo.preview) say(`${photo.name}: ${error.message}`);
  } finally {
    renderList();
  }
}

async function select(photo) {
  if (!photo.preview) return;
  state.current = photo;
  await editor.show(photo);
  updateTools();
  renderList();
}

// Hints changed: recolour the photo once the edits pause (every model follows hints).
function hintsChanged(photo) {
  updateTools();
  const recolour = state.recolour;
  clearTimeout(recolour.timer);
  recolour.timer = setTimeout(async () => {
    recolour.controller?.abort();
    const controller = new AbortController();
    recolour.controller = controller;
    editor.busy(true);
    await preview(photo, controller.signal);
    if (recolour.controller === controller) editor.busy(false);
  }, RECOLOUR_DELAY_MS);
}

function updateTools() {
  const photo = state.current;
  $("undo").disabled = !photo?.history.length;
  $("reset").disabled = !photo?.hints.length;
  $("download-hints").disabled = !photo;
}

// ---- downloads -----------------------------------------------------------------------------

function save(blob, name) {
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = name;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 60_000);
}

async function fullResult(photo, format) {
  const hints = photo.hints.length ? photo.hints : undefined;
  return (await api.colorize(photo.file, {format, hints})).blob;
}

async function download() {
  const photo = state.current;
  const format = $("format").value;
  editor.busy(true);
  try {
    save(await fullResult(photo, format), `${photo.stem}-colour.${format}`);
  } catch (error) {
    say(`${photo.name}: ${error.message}`);
  } finally {
    editor.busy(false);
  }
}

function downloadHints() {
  const photo = state.current;
  const text = JSON.stringify(photo.hintsDocument(), null, 2) + "\n";
  save(new Blob([text], {type: "application/json"}), `${photo.stem}-hints.json`);
}

async function downloadAll() {
  const format = $("format").value;
  // Every photo coloured once, also one whose preview is being redone after a hint edit:
  // its full-size result is coloured afresh with its current hints, so it belongs in the zip.
  const coloured = state.photos.filter((p) => p.preview);
  const entries = [];
  const used = new Set();
  const button = $("download-all");
  button.disabled = true;
  try {
    for (const [i, photo] of coloured.entries()) {
      $("count").textContent = `Preparing ${i + 1} of ${coloured.length} at full size…`;
      $("progress").max = coloured.length;
      $("progress").value = i;
      let name = `${photo.stem}-colour.${format}`;
      for (let n = 2; used.has(name); n++) name = `${photo.stem}-colour-${n}.${format}`;
      used.add(name);
      entries.push({name, blob: await fullResult(photo, format)});
    }
    const hints = hintsDocument(coloured);
    if (Object.keys(hints).length) {
      entries.push({name: "hints.json", blob: new Blob([JSON.stringify(hints, null, 2)])});
    }
    save(await makeZip(entries), "jaxcolor-photos.zip");
  } catch (error) {
    say(`Download all: ${error.message}`);
  } finally {
    renderList();
  }
}

// ---- start ---------------------------------------------------------------------------------

function wire() {
  $("files").addEventListener("change", (event) => {
    addFiles([...event.target.files]);
    event.target.value = "";
  });
  document.addEventListener("dragover", (event) => {
    event.preventDefault();
    document.body.classList.add("dropping");
  });
  document.addEventListener("dragleave", () => document.body.classList.remove("dropping"));
  document.addEventListener("drop", (event) => {
    event.preventDefault();
    document.body.classList.remove("dropping");
    addFiles([...event.dataTransfer.files]);
  });
  const act = (id, fn) => $(id).addEventListener("click", () => state.current && fn());
  act("undo", () => editor.undo());
  act("reset", () => editor.reset());
  act("add-hint", () => editor.add(state.current.width / 2, state.current.height / 2));
  act("download", download);
  act("download-hints", downloadHints);
  $("download-all").addEventListener("click", downloadAll);
  $("message").addEventListener("click", () => say(""));
  document.addEventListener("keydown", (event) => {
    const typing = event.target.matches?.("input[type=number], input[type=text]");
    if ((event.ctrlKey || event.metaKey) && event.key === "z" && !typing && state.current) {
      event.preventDefault();
      editor.undo();
    }
  });
}

async function start() {
  try {
    state.health = await api.health();
  } catch (error) {
    say(error.status === 401 ? "This studio needs its token: open the address `jaxcolor " +
        "serve` printed, with its #token=… part." : `The server did not answer: ${error.message}`);
    $("model").textContent = "not connected";
    return;
  }
  const health = state.health;
  state.previewSide = previewSide(health.limits);
  $("model").textContent = `model ${health.model} · render size ${health.render_size}`;
  editor = new Editor({onChange: hintsChanged, defaultRadius: health.hint_radius});
  wire();
}

start();
