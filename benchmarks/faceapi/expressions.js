// face-api.js FaceExpressionNet on face crops, for benchmarks/accuracy_vs_peers.py.
//
//   node expressions.js MODEL_DIR IN.bin OUT.bin [wasm|cpu]
//
// MODEL_DIR holds face_expression_model-weights_manifest.json and its .bin
// (../shared/peers/face-api-expression).  IN.bin is a sequence of faces, each
// a little-endian uint32 height, uint32 width, then height*width*3 RGB bytes:
// the region face-api's extractFaceTensors slices out of the photo for a
// detection box.  The library itself does the rest, exactly as in its own
// pipeline: FaceExpressionNet.predictExpressions pads each region to a square
// (centred, zeros), resizes it to 112x112 (tf.image.resizeBilinear),
// subtracts its mean RGB, divides by 255 and runs the network.  OUT.bin gets
// 7 float32 probabilities per face in face-api's order: neutral, happy, sad,
// angry, fearful, disgusted, surprised.
//
// Runs on @tensorflow/tfjs with the WebAssembly backend by default (the one
// face-api documents for node without tfjs-node) or the pure-JS cpu backend.
'use strict';

const fs = require('fs');
const path = require('path');
const tf = require('@tensorflow/tfjs');
const wasm = require('@tensorflow/tfjs-backend-wasm');
const faceapi = require('@vladmandic/face-api/dist/face-api.node-wasm.js');

const BATCH = 32;

async function main() {
  const [modelDir, inPath, outPath, backend = 'wasm'] = process.argv.slice(2);
  if (!outPath) {
    process.stderr.write('usage: node expressions.js MODEL_DIR IN.bin OUT.bin [wasm|cpu]\n');
    process.exit(2);
  }
  if (backend === 'wasm') {
    wasm.setWasmPaths(path.join(path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm')), path.sep));
  }
  await tf.setBackend(backend);
  await tf.ready();
  await faceapi.nets.faceExpressionNet.loadFromDisk(modelDir);

  const buf = fs.readFileSync(inPath);
  const faces = [];
  for (let off = 0; off < buf.length;) {
    const h = buf.readUInt32LE(off);
    const w = buf.readUInt32LE(off + 4);
    off += 8;
    faces.push(buf.subarray(off, off + h * w * 3));
    faces[faces.length - 1].shape = [h, w, 3];
    off += h * w * 3;
  }
  const out = new Float32Array(faces.length * 7);
  for (let i = 0; i < faces.length; i += BATCH) {
    const tensors = faces.slice(i, i + BATCH).map((f) => tf.tensor3d(new Uint8Array(f), f.shape, 'int32'));
    // An array input is one NetInput batch: each face is padded and resized on its own.
    let preds = await faceapi.nets.faceExpressionNet.predictExpressions(tensors);
    if (!Array.isArray(preds)) preds = [preds];
    preds.forEach((p, j) => faceapi.FACE_EXPRESSION_LABELS.forEach((e, k) => { out[(i + j) * 7 + k] = p[e]; }));
    tensors.forEach((t) => t.dispose());
  }
  fs.writeFileSync(outPath, Buffer.from(out.buffer));
  process.stderr.write(`face-api ${faceapi.version} on tfjs ${tf.version.tfjs} (${tf.getBackend()}): ${faces.length} faces\n`);
}

main().catch((e) => { process.stderr.write(`${e.stack || e}\n`); process.exit(1); });
