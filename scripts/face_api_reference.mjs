// face-api's own JavaScript on fixed inputs: the reference for the PyTorch port's parity test.
//
// Usage: node scripts/face_api_reference.mjs PACKAGE_DIR INPUTS.json OUTPUT.json
//
// PACKAGE_DIR is the unpacked `npm pack @vladmandic/face-api@1.7.15` tarball (its `package/` folder).
// INPUTS.json: {"inputs": [{"name", "height", "width", "rgb": base64 of height*width*3 uint8}]}.
// OUTPUT.json gets, per input, face-api's logits (FaceProcessor.runNet) and probabilities
// (FaceExpressionNet.predictExpressions), in face-api's label order, plus the versions used.
//
// The package's self-contained ESM build (dist/face-api.esm.js, TF.js 4.22.0 bundled) runs on TF.js's
// pure-JavaScript 'cpu' backend: nothing native is downloaded. That build ships without Node's `util`
// module, so TF.js is told it runs in a worker (WorkerGlobalScope defined) and uses the web platform
// APIs (TextEncoder, fetch) that Node has built in; the kernels are the same JavaScript either way.
// Inputs go in as int32 tensors, so face-api's own tensor path does the rest: padToSquare
// (zeros, centred), resizeBilinear to 112 when needed, mean subtraction and division by 255.

import fs from 'node:fs';
import path from 'node:path';

globalThis.WorkerGlobalScope = class {};
const [packageDir, inputsPath, outputPath] = process.argv.slice(2);
if (!outputPath) {
  console.error('usage: node face_api_reference.mjs PACKAGE_DIR INPUTS.json OUTPUT.json');
  process.exit(2);
}
const faceapi = await import(path.resolve(packageDir, 'dist/face-api.esm.js'));
const { tf } = faceapi;
await tf.setBackend('cpu');
await tf.ready();

const modelDir = path.join(packageDir, 'model');
const manifest = JSON.parse(fs.readFileSync(path.join(modelDir, 'face_expression_model-weights_manifest.json'), 'utf8'));
const bin = fs.readFileSync(path.join(modelDir, 'face_expression_model.bin'));
const weightMap = tf.io.decodeWeights(bin.buffer.slice(bin.byteOffset, bin.byteOffset + bin.byteLength), manifest[0].weights);
const net = new faceapi.FaceExpressionNet();
net.loadFromWeightMap(weightMap);

const { inputs } = JSON.parse(fs.readFileSync(inputsPath, 'utf8'));
const results = [];
for (const input of inputs) {
  const pixels = Int32Array.from(Buffer.from(input.rgb, 'base64'));
  const image = tf.tensor3d(pixels, [input.height, input.width, 3], 'int32');
  const logits = net.runNet(await faceapi.toNetInput(image));
  const expressions = await net.predictExpressions(image);
  results.push({
    name: input.name,
    logits: Array.from(await logits.data()),
    probabilities: faceapi.FACE_EXPRESSION_LABELS.map((label) => expressions[label]),
  });
  tf.dispose([image, logits]);
}
fs.writeFileSync(outputPath, JSON.stringify({
  face_api: faceapi.version,
  tfjs: tf.version_core,
  backend: tf.getBackend(),
  labels: faceapi.FACE_EXPRESSION_LABELS,
  results,
}));
