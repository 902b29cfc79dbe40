// Issue 12's next lever, measured before it is built: SmolLM2 decode steps through onnxruntime's C API (the
// libonnxruntime.so.1 that onnxruntime-node ships), two ways on the same right-padded cache of `cap` positions a
// row, as the engine's SlotBatch lays it out (service/engine/batch-kv.ts):
//   copy:  what the engine does through onnxruntime-node today. The mask is cap + 1 wide, so GroupQueryAttention
//          builds a fresh present (zeroing it, then copying the whole past in), and the step's new positions are
//          fetched as new_key_values (outputs onnxruntime allocates) and copied into the cache at each row's length.
//   share: past and present bound to the same buffer, as onnxruntime-genai binds them; the mask is cap wide, so
//          present has the past's shape and GroupQueryAttention (pointer-equal past and present) writes only the
//          new position, in place. logits go into a buffer of ours. onnxruntime-node can do neither: it exposes no
//          output binding and copies every output it returns.
// Both feed the same tokens and positions; only the step is timed: Run, plus for copy the copy into the cache and
// freeing onnxruntime's outputs (onnxruntime-node frees them too). Usage:
//   decode-step MODEL.onnx ROWS PROMPT_POSITIONS STEPS share|copy
#include "onnxruntime_c_api.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
static const OrtApi* g;
#define CK(x) do { OrtStatus* s_ = (x); if (s_) { fprintf(stderr, "%s: %s\n", #x, g->GetErrorMessage(s_)); exit(1);} } while (0)
static double now_ms(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1e3 + t.tv_nsec / 1e6; }
static int cmp(const void* a, const void* b) { double x = *(double*)a, y = *(double*)b; return x < y ? -1 : x > y; }
int main(int argc, char** argv) {
  if (argc != 6) { fprintf(stderr, "usage: %s MODEL.onnx ROWS PROMPT_POSITIONS STEPS share|copy\n", argv[0]); return 2; }
  const char* path = argv[1]; int B = atoi(argv[2]), P = atoi(argv[3]), N = atoi(argv[4]); int share = strcmp(argv[5], "share") == 0;
  g = OrtGetApiBase()->GetApi(ORT_API_VERSION);
  OrtEnv* env; CK(g->CreateEnv(ORT_LOGGING_LEVEL_WARNING, "spike", &env));
  OrtSessionOptions* so; CK(g->CreateSessionOptions(&so));
  CK(g->SetIntraOpNumThreads(so, 0)); CK(g->SetInterOpNumThreads(so, 1));
  CK(g->SetSessionGraphOptimizationLevel(so, ORT_ENABLE_ALL));
  CK(g->AddSessionConfigEntry(so, "session.intra_op.allow_spinning", "1"));
  OrtSession* sess; CK(g->CreateSession(env, path, so, &sess));
  OrtAllocator* al; CK(g->GetAllocatorWithDefaultOptions(&al));
  size_t nin; CK(g->SessionGetInputCount(sess, &nin));
  int L = 0, keep = 0; for (size_t i = 0; i < nin; i++) { char* n; CK(g->SessionGetInputName(sess, i, al, &n)); if (!strncmp(n, "past_key_values.", 16)) L++; if (!strcmp(n, "num_logits_to_keep")) keep = 1; }
  L /= 2; const int KV = 3, D = 64, V = 49152;
  int cap = P + N + 1; // positions a row of the shared buffer holds
  OrtMemoryInfo* mi; CK(g->CreateCpuMemoryInfo(OrtArenaAllocator, OrtMemTypeDefault, &mi));
  size_t kvn = (size_t)B * KV * cap * D; float** kv = malloc(sizeof(float*) * 2 * L);
  for (int t = 0; t < 2 * L; t++) { kv[t] = calloc(kvn, 4); for (size_t e = 0; e < kvn; e++) kv[t][e] = 0.01f * (e % 97); }
  float* logits = malloc((size_t)B * V * 4);
  int nf = 3 + keep + 2 * L; const char** in_names = malloc(sizeof(char*) * nf); OrtValue** ins = malloc(sizeof(OrtValue*) * nf);
  const char** out_names = malloc(sizeof(char*) * (1 + 2 * L)); OrtValue** outs = calloc(1 + 2 * L, sizeof(OrtValue*));
  char (*names)[64] = malloc(64 * 4 * L);
  int64_t* ids = calloc(B, 8); int64_t* pos = calloc(B, 8); int64_t keep1 = 1; int64_t* mask = calloc((size_t)B * (cap + 1), 8);
  double* steps = malloc(sizeof(double) * N);
  for (int s = 0; s < N; s++) {
    int len = P + s; // positions each row holds before this step
    int W = share ? cap : cap + 1, plen = cap;
    for (int b = 0; b < B; b++) { ids[b] = 100 + b; pos[b] = len; for (int w = 0; w < W; w++) mask[b * W + w] = w <= len; }
    int64_t d2[2] = {B, 1}, dm[2] = {B, W}, dk[4] = {B, KV, plen, D}, dl[3] = {B, 1, V};
    int k = 0;
    in_names[k] = "input_ids"; CK(g->CreateTensorWithDataAsOrtValue(mi, ids, B * 8, d2, 2, ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64, &ins[k++]));
    in_names[k] = "attention_mask"; CK(g->CreateTensorWithDataAsOrtValue(mi, mask, (size_t)B * W * 8, dm, 2, ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64, &ins[k++]));
    in_names[k] = "position_ids"; CK(g->CreateTensorWithDataAsOrtValue(mi, pos, B * 8, d2, 2, ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64, &ins[k++]));
    if (keep) { in_names[k] = "num_logits_to_keep"; CK(g->CreateTensorWithDataAsOrtValue(mi, &keep1, 8, NULL, 0, ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64, &ins[k++])); }
    for (int t = 0; t < 2 * L; t++) {
      snprintf(names[t], 64, "past_key_values.%d.%s", t / 2, t % 2 ? "value" : "key"); in_names[k] = names[t];
      CK(g->CreateTensorWithDataAsOrtValue(mi, kv[t], (size_t)B * KV * plen * D * 4, dk, 4, ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, &ins[k++]));
    }
    out_names[0] = "logits"; CK(g->CreateTensorWithDataAsOrtValue(mi, logits, (size_t)B * V * 4, dl, 3, ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, &outs[0]));
    for (int t = 0; t < 2 * L; t++) {
      snprintf(names[2 * L + t], 64, "%s.%d.%s", share ? "present" : "new_key_values", t / 2, t % 2 ? "value" : "key"); out_names[1 + t] = names[2 * L + t];
      if (share) CK(g->CreateTensorWithDataAsOrtValue(mi, kv[t], (size_t)B * KV * plen * D * 4, dk, 4, ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, &outs[1 + t]));
      else outs[1 + t] = NULL; // ORT allocates, as onnxruntime-node lets it
    }
    double t0 = now_ms();
    CK(g->Run(sess, NULL, in_names, (const OrtValue* const*)ins, k, out_names, 1 + 2 * L, outs));
    if (!share) for (int t = 0; t < 2 * L; t++) { // each row's new position into the cache at its length
      float* nk; CK(g->GetTensorMutableData(outs[1 + t], (void**)&nk));
      for (int r = 0; r < B * KV; r++) memcpy(kv[t] + ((size_t)r * cap + len) * D, nk + (size_t)r * D, D * 4);
      g->ReleaseValue(outs[1 + t]);
    }
    steps[s] = now_ms() - t0;
    for (int i = 0; i < k; i++) g->ReleaseValue(ins[i]);
    g->ReleaseValue(outs[0]);
    if (share) for (int t = 0; t < 2 * L; t++) g->ReleaseValue(outs[1 + t]); // copy's were released, timed, above
  }
  qsort(steps, N, sizeof(double), cmp);
  printf("%s B=%d P=%d N=%d: step p50 %.2f ms p90 %.2f p99 %.2f max %.2f\n", share ? "share" : "copy ", B, P, N, steps[N / 2], steps[N * 9 / 10], steps[N * 99 / 100], steps[N - 1]);
  return 0;
}
