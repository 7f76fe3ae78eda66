// A zip archive made in the browser, for "Download all": entries stored as they are (PNG
// and JPEG are compressed already, deflating them again gains nothing), names in UTF-8.
// The format is PKWARE's APPNOTE: a local header before each file, a central directory and
// its end record after them. No zip64: the archive must stay under 4 GiB.

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

function crc32(bytes) {
  let crc = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) crc = CRC_TABLE[(crc ^ bytes[i]) & 0xff] ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

function dosTime(date) {
  return {
    time: (date.getHours() << 11) | (date.getMinutes() << 5) | (date.getSeconds() >> 1),
    date: ((date.getFullYear() - 1980) << 9) | ((date.getMonth() + 1) << 5) | date.getDate(),
  };
}

function record(fields) {
  // fields: [[bytes per value (2 | 4), value], ...] -> little-endian bytes
  const size = fields.reduce((sum, [width]) => sum + width, 0);
  const view = new DataView(new ArrayBuffer(size));
  let at = 0;
  for (const [width, value] of fields) {
    if (width === 2) view.setUint16(at, value, true);
    else view.setUint32(at, value, true);
    at += width;
  }
  return new Uint8Array(view.buffer);
}

// entries: [{name, blob}] -> a Blob of the zip archive.
export async function makeZip(entries, now = new Date()) {
  const {time, date} = dosTime(now);
  const UTF8_NAMES = 0x0800;
  const parts = [];
  const central = [];
  let offset = 0;
  for (const {name, blob} of entries) {
    const bytes = new Uint8Array(await blob.arrayBuffer());
    const nameBytes = new TextEncoder().encode(name);
    const crc = crc32(bytes);
    const common = [[2, 20], [2, UTF8_NAMES], [2, 0], [2, time], [2, date], [4, crc],
                    [4, bytes.length], [4, bytes.length], [2, nameBytes.length], [2, 0]];
    const local = record([[4, 0x04034b50], ...common]);
    parts.push(local, nameBytes, bytes);
    central.push(record([[4, 0x02014b50], [2, 20], ...common, [2, 0], [2, 0], [2, 0], [4, 0],
                         [4, offset]]), nameBytes);
    offset += local.length + nameBytes.length + bytes.length;
  }
  const centralSize = central.reduce((sum, part) => sum + part.length, 0);
  const end = record([[4, 0x06054b50], [2, 0], [2, 0], [2, entries.length],
                      [2, entries.length], [4, centralSize], [4, offset], [2, 0]]);
  return new Blob([...parts, ...central, end], {type: "application/zip"});
}
