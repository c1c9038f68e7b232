// Interop helper for keyenvelope's tests: HPKE base mode with
// DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM, implemented by the
// npm package @hpke/core (not by Liaison).
//
// Reads one JSON request on stdin and writes one JSON response on stdout:
//   {"op":"open","sk":hex,"enc":hex,"ct":hex,"info":hex,"aad":hex} -> {"pt":hex}
//   {"op":"seal","pk":hex,"pt":hex,"info":hex,"aad":hex}           -> {"enc":hex,"ct":hex}
// HPKE_CORE names the file of the @hpke/core ES module.
import { pathToFileURL } from "node:url";

const { CipherSuite, DhkemX25519HkdfSha256, HkdfSha256, Aes256Gcm } =
  await import(pathToFileURL(process.env.HPKE_CORE).href);

const hex = (s) => Uint8Array.from(Buffer.from(s, "hex"));
const toHex = (b) => Buffer.from(new Uint8Array(b)).toString("hex");

let input = "";
for await (const chunk of process.stdin) input += chunk;
const req = JSON.parse(input);

const suite = new CipherSuite({
  kem: new DhkemX25519HkdfSha256(),
  kdf: new HkdfSha256(),
  aead: new Aes256Gcm(),
});

if (req.op === "open") {
  const sk = await suite.kem.deserializePrivateKey(hex(req.sk));
  const r = await suite.createRecipientContext({ recipientKey: sk, enc: hex(req.enc), info: hex(req.info) });
  const pt = await r.open(hex(req.ct), hex(req.aad));
  process.stdout.write(JSON.stringify({ pt: toHex(pt) }));
} else if (req.op === "seal") {
  const pk = await suite.kem.deserializePublicKey(hex(req.pk));
  const s = await suite.createSenderContext({ recipientPublicKey: pk, info: hex(req.info) });
  const ct = await s.seal(hex(req.pt), hex(req.aad));
  process.stdout.write(JSON.stringify({ enc: toHex(s.enc), ct: toHex(ct) }));
} else {
  throw new Error("unknown op " + req.op);
}
