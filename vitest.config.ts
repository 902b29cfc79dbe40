import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Engine tests start worker threads that load ONNX sessions; two cores cannot run many files at once.
    fileParallelism: false,
    testTimeout: 60_000,
    // Transformers.js loads onnxruntime-node in the test process too (see service/engine/ort-env.ts).
    env: { ORT_DISABLE_TELEMETRY: '1' },
    hookTimeout: 120_000,
  },
});
