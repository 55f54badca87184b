// Times one DINOv2 ONNX file under ONNX Runtime (onnxruntime-node, CPU execution provider,
// graph optimisation 'all'), for the peer benchmark (bench/peer_bench.sh). Not a test.
//   node bench/peer_ort.js MODEL.onnx SIZE THREADS RUNS
// ORT_NODE_DIR: the folder holding node_modules/onnxruntime-node; ORT_NO_SPIN=1 turns the
// worker threads' spinning off. Prints, like bench_backbone:
//   ort VERSION: threads N: X s/image best, Y mean of RUNS
'use strict';
const path = require('path');
const [file, sizeS, threadsS, runsS] = process.argv.slice(2);
if (file === '--help' || file === '-h') {
    console.log('usage: node bench/peer_ort.js MODEL.onnx SIZE THREADS RUNS\n' +
                '  ORT_NODE_DIR: folder with node_modules/onnxruntime-node; ORT_NO_SPIN=1: no spinning');
    process.exit(0);
}
if (!file || !sizeS || !threadsS || !runsS) {
    console.error('usage: node bench/peer_ort.js MODEL.onnx SIZE THREADS RUNS');
    process.exit(2);
}
const dir = process.env.ORT_NODE_DIR || '.';
const ort = require(path.join(path.resolve(dir), 'node_modules', 'onnxruntime-node'));
const version = require(path.join(path.resolve(dir), 'node_modules', 'onnxruntime-node',
                                  'package.json')).version;
const size = parseInt(sizeS, 10), threads = parseInt(threadsS, 10), runs = parseInt(runsS, 10);
if (!(size > 0 && threads > 0 && runs > 0)) {
    console.error('peer_ort: bad SIZE, THREADS or RUNS');
    process.exit(2);
}

(async () => {
    const session = await ort.InferenceSession.create(file, {
        executionProviders: ['cpu'],
        graphOptimizationLevel: 'all',
        intraOpNumThreads: threads,
        interOpNumThreads: 1,
        executionMode: 'sequential',
        // ORT_NO_SPIN=1: worker threads do not spin while waiting (ORT's counterpart of
        // OMP_WAIT_POLICY=passive, for shared cores)
        extra: process.env.ORT_NO_SPIN === '1' ?
            {session: {intra_op: {allow_spinning: '0'}, inter_op: {allow_spinning: '0'}}} : {},
    });
    const n = 3 * size * size, data = new Float32Array(n);
    let s = 0x9e3779b9 >>> 0;
    for (let i = 0; i < n; i++) { // xorshift32, uniform [-2, 2)
        s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
        data[i] = (s / 4294967296) * 4 - 2;
    }
    const feeds = {};
    feeds[session.inputNames[0]] = new ort.Tensor('float32', data, [1, 3, size, size]);
    await session.run(feeds); // warm-up
    let best = Infinity, sum = 0;
    for (let r = 0; r < runs; r++) {
        const t0 = process.hrtime.bigint();
        await session.run(feeds);
        const dt = Number(process.hrtime.bigint() - t0) / 1e9;
        sum += dt;
        if (dt < best) best = dt;
    }
    console.log(`ort ${version}: threads ${threads}: ${best.toFixed(4)} s/image best, ` +
                `${(sum / runs).toFixed(4)} mean of ${runs}`);
})().catch((e) => {
    console.error('peer_ort: ' + e.message);
    process.exit(1);
});
