/**
 * Imported before onnxruntime-node (a side-effect import, so it is evaluated first): onnxruntime ≥ 1.29 sends
 * usage telemetry to Microsoft on Linux unless ORT_DISABLE_TELEMETRY is set (microsoft/onnxruntime#27379). A
 * self-hosted API must not call home, and on a closed network the attempt is only noise. An operator's own
 * value is kept.
 */
process.env.ORT_DISABLE_TELEMETRY ??= '1';
