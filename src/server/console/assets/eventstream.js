// `application/vnd.amazon.eventstream` decoding, as RetrieveAndGenerateStream answers: each
// message is a prelude (total length, headers length, CRC32 of those 8 bytes), string headers,
// the payload and a CRC32 of everything before it, all big-endian. Both checksums are checked.

const TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

export function crc32(bytes) {
  let c = 0xffffffff;
  for (const b of bytes) c = TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

const decoder = new TextDecoder();

// One message from the start of `bytes`: { headers, payload, length }, or null when the
// bytes do not hold a whole message yet.
export function decodeMessage(bytes) {
  if (bytes.length < 12) return null;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const total = view.getUint32(0);
  const headersLength = view.getUint32(4);
  if (total < 16 || headersLength > total - 16) throw new Error("malformed event-stream prelude");
  if (crc32(bytes.subarray(0, 8)) !== view.getUint32(8)) throw new Error("event-stream prelude checksum mismatch");
  if (bytes.length < total) return null;
  if (crc32(bytes.subarray(0, total - 4)) !== view.getUint32(total - 4)) throw new Error("event-stream message checksum mismatch");
  const headers = {};
  let at = 12;
  const end = 12 + headersLength;
  while (at < end) {
    const nameLength = bytes[at];
    const name = decoder.decode(bytes.subarray(at + 1, at + 1 + nameLength));
    at += 1 + nameLength;
    if (bytes[at] !== 7) throw new Error(`event-stream header ${name} is not a string`);
    const valueLength = view.getUint16(at + 1);
    headers[name] = decoder.decode(bytes.subarray(at + 3, at + 3 + valueLength));
    at += 3 + valueLength;
  }
  const payload = decoder.decode(bytes.subarray(end, total - 4));
  return { headers, payload, length: total };
}

// Reads a response body's messages as they arrive, calling onMessage(headers, json).
export async function readEvents(body, onMessage) {
  const reader = body.getReader();
  let pending = new Uint8Array(0);
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    const joined = new Uint8Array(pending.length + value.length);
    joined.set(pending);
    joined.set(value, pending.length);
    pending = joined;
    for (;;) {
      const message = decodeMessage(pending);
      if (!message) break;
      pending = pending.slice(message.length);
      onMessage(message.headers, message.payload ? JSON.parse(message.payload) : {});
    }
  }
  if (pending.length) throw new Error("the stream ended inside a message");
}
