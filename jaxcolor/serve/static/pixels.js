// Pixel arithmetic of the page: the gray "before" image, the colour under a point, and the
// mapping between the photo's pixels and the preview's.

const linear = new Float32Array(256).map((_, v) => {
  const c = v / 255;
  return c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
});

function encode(y) {
  const c = y <= 0.0031308 ? 12.92 * y : 1.055 * y ** (1 / 2.4) - 0.055;
  return Math.round(255 * Math.min(Math.max(c, 0), 1));
}

// The gray photo of a colour result. The result keeps the photo's own CIELAB lightness, and
// L depends on the relative luminance Y alone, so the sRGB gray of the same Y is the gray the
// photo had (up to 8-bit rounding): no second request, and the two line up pixel for pixel.
export function toGray(colour) {
  const gray = new ImageData(colour.width, colour.height);
  const src = colour.data;
  const out = gray.data;
  for (let i = 0; i < src.length; i += 4) {
    const y = 0.2126729 * linear[src[i]] + 0.7151522 * linear[src[i + 1]] +
              0.072175 * linear[src[i + 2]];
    out[i] = out[i + 1] = out[i + 2] = encode(y);
    out[i + 3] = src[i + 3];
  }
  return gray;
}

// The preview pixel (column or row) showing the photo's pixel `v`, on an axis the photo
// spans with `photoSize` pixels and the preview with `previewSize` (pixel centres map to
// pixel centres, as the server's preview scales hints).
export function toPreview(v, photoSize, previewSize) {
  const p = Math.round((v + 0.5) * previewSize / photoSize - 0.5);
  return Math.min(Math.max(p, 0), previewSize - 1);
}

// The colour "#rrggbb" of the preview where the photo's pixel (x, y) is.
export function colourAt(pixels, x, y, width, height) {
  const px = toPreview(x, width, pixels.width);
  const py = toPreview(y, height, pixels.height);
  const i = 4 * (py * pixels.width + px);
  const hex = (v) => v.toString(16).padStart(2, "0");
  return `#${hex(pixels.data[i])}${hex(pixels.data[i + 1])}${hex(pixels.data[i + 2])}`;
}
