// The studio's HTTP API as the page uses it (README, "Studio"): the token, the error shape,
// and waiting politely when the server's queue is full.

// `jaxcolor serve` prints a URL ending in #token=...: the fragment never leaves the browser.
const token = new URLSearchParams(location.hash.slice(1)).get("token");
const BUSY_TRIES = 8;

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

function headers() {
  return token ? {Authorization: `Bearer ${token}`} : {};
}

async function failure(response) {
  let message = `${response.status} ${response.statusText}`;
  try {
    message = (await response.json()).error || message;
  } catch {
    // not JSON: keep the status line
  }
  return new ApiError(response.status, message);
}

function pause(seconds, signal) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, seconds * 1000);
    signal?.addEventListener("abort", () => {
      clearTimeout(timer);
      reject(signal.reason);
    }, {once: true});
  });
}

export async function health() {
  const response = await fetch("/api/health", {headers: headers(), cache: "no-store"});
  if (!response.ok) throw await failure(response);
  return response.json();
}

// The coloured photo: {blob, width, height} (width, height: the uploaded photo's size).
// options: hints (a list, sent only when given), format ("png" | "jpg"), preview (long side
// in pixels), signal (an AbortSignal). A full queue (503) is retried after Retry-After.
export async function colorize(file, {hints, format = "png", preview, signal} = {}) {
  const form = new FormData();
  form.append("image", file, file.name);
  form.append("format", format);
  if (preview) form.append("preview", String(preview));
  if (hints) form.append("hints", JSON.stringify(hints));
  for (let attempt = 1; ; attempt++) {
    const response = await fetch("/api/colorize", {
      method: "POST", body: form, headers: headers(), signal});
    if (response.ok) {
      return {blob: await response.blob(),
              width: Number(response.headers.get("X-Image-Width")),
              height: Number(response.headers.get("X-Image-Height"))};
    }
    if (response.status !== 503 || attempt === BUSY_TRIES) throw await failure(response);
    await pause(Number(response.headers.get("Retry-After")) || 1, signal);
  }
}
