// chatmirror's binding to onnxruntime's C API (the libonnxruntime.so.1 that onnxruntime-node ships), for the one
// thing onnxruntime-node cannot do: bind outputs to buffers of ours. With it a decode step's present KV is the
// past's own buffer, so GroupQueryAttention writes the new positions in place (issue 12: test/bench/native
// measured a 16-row int8 step at 0.85x, p99 0.6x, of fetching them and copying them in). Outputs left unbound
// come back without a copy: their ArrayBuffer is onnxruntime's own memory, released when JavaScript drops it.
//
// JavaScript side: service/engine/ort-native.ts (the only caller). Three functions:
//   createSession(graph: Uint8Array, externalNames: string[], externalData: Uint8Array[], intraOpThreads: number,
//                 spin: boolean) -> session (an external)
//   describe(session) -> { inputs: Meta[], outputs: Meta[] }, Meta = { name, type: string | null, shape }
//                 (type null for a value that is not a tensor; shape -1 for a symbolic axis)
//   run(session, inputs: [name, type, dims, data][], outputs: [name, [type, dims, data] | null][])
//                 -> Promise<[type, dims, data][]> (a bound output comes back as the array it was bound to)
// run's buffers must stay untouched until its promise settles; the binding holds references so that they at
// least stay alive. Node-API only, so one build serves every Node version.
#include <node_api.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "onnxruntime_c_api.h"

static const OrtApi* ort;
static OrtEnv* ort_env;
static OrtMemoryInfo* cpu_memory;
static OrtStatus* init_status;
static pthread_once_t init_once = PTHREAD_ONCE_INIT;

// One environment for the process: every worker thread that loads the binding shares it.
static void init_ort(void) {
  ort = OrtGetApiBase()->GetApi(ORT_API_VERSION);
  if (!ort) return;
  init_status = ort->CreateEnv(ORT_LOGGING_LEVEL_WARNING, "chatmirror", &ort_env);
  if (!init_status) init_status = ort->CreateCpuMemoryInfo(OrtDeviceAllocator, OrtMemTypeDefault, &cpu_memory);
}

static napi_value throw_error(napi_env env, const char* message) {
  napi_throw_error(env, NULL, message);
  return NULL;
}

// Throws onnxruntime's message (and frees the status); returns whether there was one.
static int throw_status(napi_env env, OrtStatus* status) {
  if (!status) return 0;
  napi_throw_error(env, NULL, ort->GetErrorMessage(status));
  ort->ReleaseStatus(status);
  return 1;
}

#define NAPI(call)                                                       \
  do {                                                                   \
    if ((call) != napi_ok) {                                             \
      const napi_extended_error_info* info_;                             \
      napi_get_last_error_info(env, &info_);                             \
      bool pending_;                                                     \
      napi_is_exception_pending(env, &pending_);                         \
      if (!pending_) napi_throw_error(env, NULL, info_->error_message); \
      return NULL;                                                       \
    }                                                                    \
  } while (0)

#define ORT(call)                            \
  do {                                       \
    if (throw_status(env, (call))) return NULL; \
  } while (0)

// A chain of onnxruntime calls that stops at the first failure, whose status `status` keeps.
#define TRY(status, call) \
  if (!(status)) (status) = (call)

// ---- element types ---------------------------------------------------------------------------------------
struct element {
  const char* name;
  ONNXTensorElementDataType ort;
  napi_typedarray_type js;
  size_t size;
};
static const struct element elements[] = {
    {"float32", ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, napi_float32_array, 4},
    {"float16", ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16, napi_uint16_array, 2},
    {"float64", ONNX_TENSOR_ELEMENT_DATA_TYPE_DOUBLE, napi_float64_array, 8},
    {"int64", ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64, napi_bigint64_array, 8},
    {"uint64", ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT64, napi_biguint64_array, 8},
    {"int32", ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32, napi_int32_array, 4},
    {"uint32", ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT32, napi_uint32_array, 4},
    {"int16", ONNX_TENSOR_ELEMENT_DATA_TYPE_INT16, napi_int16_array, 2},
    {"uint16", ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT16, napi_uint16_array, 2},
    {"int8", ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8, napi_int8_array, 1},
    {"uint8", ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8, napi_uint8_array, 1},
    {"bool", ONNX_TENSOR_ELEMENT_DATA_TYPE_BOOL, napi_uint8_array, 1},
};
#define ELEMENT_TYPES (sizeof(elements) / sizeof(elements[0]))

static const struct element* element_by_ort(ONNXTensorElementDataType t) {
  for (size_t i = 0; i < ELEMENT_TYPES; i++)
    if (elements[i].ort == t) return &elements[i];
  return NULL;
}

// ---- small helpers ---------------------------------------------------------------------------------------
static char* get_string(napi_env env, napi_value value) {
  size_t len;
  if (napi_get_value_string_utf8(env, value, NULL, 0, &len) != napi_ok) return NULL;
  char* s = malloc(len + 1);
  if (s) napi_get_value_string_utf8(env, value, s, len + 1, &len);
  return s;
}

// The bytes of a Uint8Array.
static int get_bytes(napi_env env, napi_value value, void** data, size_t* length) {
  napi_typedarray_type kind;
  bool is_typed = false;
  napi_is_typedarray(env, value, &is_typed);
  return is_typed && napi_get_typedarray_info(env, value, &kind, length, data, NULL, NULL) == napi_ok &&
         kind == napi_uint8_array;
}

static napi_value element_at(napi_env env, napi_value array, uint32_t i) {
  napi_value v = NULL;
  napi_get_element(env, array, i, &v);
  return v;
}

static uint32_t array_length(napi_env env, napi_value array) {
  uint32_t n = 0;
  napi_get_array_length(env, array, &n);
  return n;
}

// ---- sessions --------------------------------------------------------------------------------------------
static void release_session(napi_env env, void* data, void* hint) {
  (void)env;
  (void)hint;
  ort->ReleaseSession((OrtSession*)data);
}

static OrtSession* unwrap_session(napi_env env, napi_value value) {
  void* data = NULL;
  if (napi_get_value_external(env, value, &data) != napi_ok || !data) {
    napi_throw_type_error(env, NULL, "not an onnxruntime session");
    return NULL;
  }
  return data;
}

static napi_value create_session(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  NAPI(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc != 5) return throw_error(env, "createSession(graph, externalNames, externalData, threads, spin)");
  void* graph;
  size_t graph_len;
  if (!get_bytes(env, argv[0], &graph, &graph_len)) return throw_error(env, "createSession: graph must be a Uint8Array");
  int32_t threads;
  bool spin;
  NAPI(napi_get_value_int32(env, argv[3], &threads));
  NAPI(napi_get_value_bool(env, argv[4], &spin));

  OrtSessionOptions* options;
  ORT(ort->CreateSessionOptions(&options));
  OrtStatus* status = NULL;
  uint32_t files = array_length(env, argv[1]);
  char** names = calloc(files ? files : 1, sizeof(char*));
  char** buffers = calloc(files ? files : 1, sizeof(char*));
  size_t* lengths = calloc(files ? files : 1, sizeof(size_t));
  const char* spinning = spin ? "1" : "0";
  if (!(status = ort->SetIntraOpNumThreads(options, threads)) &&
      !(status = ort->SetInterOpNumThreads(options, 1)) &&
      !(status = ort->SetSessionExecutionMode(options, ORT_SEQUENTIAL)) &&
      !(status = ort->SetSessionGraphOptimizationLevel(options, ORT_ENABLE_ALL)) &&
      !(status = ort->AddSessionConfigEntry(options, "session.intra_op.allow_spinning", spinning)) &&
      !(status = ort->AddSessionConfigEntry(options, "session.inter_op.allow_spinning", spinning))) {
    int ok = 1;
    for (uint32_t i = 0; i < files && ok; i++) {
      void* data;
      names[i] = get_string(env, element_at(env, argv[1], i));
      ok = names[i] && get_bytes(env, element_at(env, argv[2], i), &data, &lengths[i]);
      buffers[i] = data;
    }
    if (!ok)
      status = ort->CreateStatus(ORT_INVALID_ARGUMENT, "external data: names and Uint8Arrays, one each");
    else if (files > 0)
      status = ort->AddExternalInitializersFromFilesInMemory(options, (const char* const*)names, buffers, lengths,
                                                              files);
  }
  OrtSession* session = NULL;
  // Onnxruntime copies the external data into the session, so nothing here outlives this call.
  if (!status) status = ort->CreateSessionFromArray(ort_env, graph, graph_len, options, &session);
  for (uint32_t i = 0; i < files; i++) free(names[i]);
  free(names);
  free(buffers);
  free(lengths);
  ort->ReleaseSessionOptions(options);
  if (throw_status(env, status)) return NULL;
  napi_value out;
  if (napi_create_external(env, session, release_session, NULL, &out) != napi_ok) {
    ort->ReleaseSession(session);
    return throw_error(env, "could not wrap the session");
  }
  return out;
}

// { name, type, shape } of input or output i.
static napi_value describe_value(napi_env env, OrtSession* session, int output, size_t i, OrtAllocator* al) {
  char* name;
  OrtTypeInfo* type_info;
  ORT(output ? ort->SessionGetOutputName(session, i, al, &name) : ort->SessionGetInputName(session, i, al, &name));
  OrtStatus* status =
      output ? ort->SessionGetOutputTypeInfo(session, i, &type_info) : ort->SessionGetInputTypeInfo(session, i, &type_info);
  if (status) {
    al->Free(al, name);
    throw_status(env, status);
    return NULL;
  }
  napi_value meta, js_name, js_type, shape;
  napi_create_object(env, &meta);
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &js_name);
  al->Free(al, name);
  napi_set_named_property(env, meta, "name", js_name);
  const OrtTensorTypeAndShapeInfo* tensor = NULL;
  TRY(status, ort->CastTypeInfoToTensorInfo(type_info, &tensor));
  napi_get_null(env, &js_type);
  napi_create_array(env, &shape);
  if (tensor) {
    ONNXTensorElementDataType t = ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED;
    size_t rank = 0;
    TRY(status, ort->GetTensorElementType(tensor, &t));
    TRY(status, ort->GetDimensionsCount(tensor, &rank));
    int64_t* dims = calloc(rank ? rank : 1, sizeof(int64_t));
    TRY(status, ort->GetDimensions(tensor, dims, rank));
    const struct element* e = element_by_ort(t);
    if (e) napi_create_string_utf8(env, e->name, NAPI_AUTO_LENGTH, &js_type);
    else napi_create_string_utf8(env, "unsupported", NAPI_AUTO_LENGTH, &js_type);
    for (size_t d = 0; d < rank; d++) {
      napi_value v;
      napi_create_int64(env, dims[d], &v);
      napi_set_element(env, shape, (uint32_t)d, v);
    }
    free(dims);
  }
  ort->ReleaseTypeInfo(type_info);
  if (throw_status(env, status)) return NULL;
  napi_set_named_property(env, meta, "type", js_type);
  napi_set_named_property(env, meta, "shape", shape);
  return meta;
}

static napi_value describe(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  NAPI(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  OrtSession* session = unwrap_session(env, argv[0]);
  if (!session) return NULL;
  OrtAllocator* al;
  ORT(ort->GetAllocatorWithDefaultOptions(&al));
  napi_value out;
  NAPI(napi_create_object(env, &out));
  for (int output = 0; output < 2; output++) {
    size_t n;
    ORT(output ? ort->SessionGetOutputCount(session, &n) : ort->SessionGetInputCount(session, &n));
    napi_value list;
    NAPI(napi_create_array_with_length(env, n, &list));
    for (size_t i = 0; i < n; i++) {
      napi_value meta = describe_value(env, session, output, i, al);
      if (!meta) return NULL;
      NAPI(napi_set_element(env, list, (uint32_t)i, meta));
    }
    NAPI(napi_set_named_property(env, out, output ? "outputs" : "inputs", list));
  }
  return out;
}

// ---- runs ------------------------------------------------------------------------------------------------
typedef struct {
  OrtSession* session;
  size_t n_in, n_out;
  char** in_names;
  char** out_names;
  OrtValue** ins;
  OrtValue** outs;
  // Bound outputs: the OrtValue over our buffer, released once the run is done; the caller's array is returned.
  int* bound;
  // References that keep the session and every buffer alive until the run settles.
  napi_ref* refs;
  size_t n_refs;
  napi_ref session_ref;
  OrtStatus* status;
  napi_async_work work;
  napi_deferred deferred;
} Run;

static void free_run(napi_env env, Run* run) {
  for (size_t i = 0; i < run->n_in; i++) {
    free(run->in_names[i]);
    if (run->ins[i]) ort->ReleaseValue(run->ins[i]);
  }
  for (size_t i = 0; i < run->n_out; i++) {
    free(run->out_names[i]);
    if (run->outs[i]) ort->ReleaseValue(run->outs[i]);
  }
  for (size_t i = 0; i < run->n_refs; i++) napi_delete_reference(env, run->refs[i]);
  if (run->session_ref) napi_delete_reference(env, run->session_ref);
  if (run->work) napi_delete_async_work(env, run->work);
  if (run->status) ort->ReleaseStatus(run->status);
  free(run->in_names);
  free(run->out_names);
  free(run->ins);
  free(run->outs);
  free(run->bound);
  free(run->refs);
  free(run);
}

// An OrtValue over a JavaScript typed array, checked against `type` and `dims`: [type, dims, data].
// The tensor described by spec[at], spec[at + 1], spec[at + 2] (type, dims, data): inputs come as
// [name, type, dims, data] and bound outputs as [type, dims, data], read in place rather than re-packed.
static OrtValue* tensor_over(napi_env env, napi_value spec, uint32_t at, const char* what, Run* run) {
  char message[256];
  napi_value js_type = element_at(env, spec, at), js_dims = element_at(env, spec, at + 1),
             data = element_at(env, spec, at + 2);
  char* type = get_string(env, js_type);
  const struct element* e = NULL;
  for (size_t i = 0; type && i < ELEMENT_TYPES; i++)
    if (!strcmp(elements[i].name, type)) e = &elements[i];
  if (!e) {
    snprintf(message, sizeof message, "%s: element type %s is not supported", what, type ? type : "?");
    free(type);
    napi_throw_type_error(env, NULL, message);
    return NULL;
  }
  free(type);
  uint32_t rank = array_length(env, js_dims);
  int64_t dims[16];
  size_t count = 1;
  if (rank > 16) {
    napi_throw_range_error(env, NULL, "more than 16 dimensions");
    return NULL;
  }
  for (uint32_t d = 0; d < rank; d++) {
    if (napi_get_value_int64(env, element_at(env, js_dims, d), &dims[d]) != napi_ok || dims[d] < 0) {
      snprintf(message, sizeof message, "%s: dimensions must be counts", what);
      napi_throw_type_error(env, NULL, message);
      return NULL;
    }
    count *= (size_t)dims[d];
  }
  napi_typedarray_type js_kind;
  size_t length;
  void* bytes;
  bool is_typed = false;
  napi_is_typedarray(env, data, &is_typed);
  if (!is_typed || napi_get_typedarray_info(env, data, &js_kind, &length, &bytes, NULL, NULL) != napi_ok ||
      js_kind != e->js || length != count) {
    snprintf(message, sizeof message, "%s: data must be a typed array of %zu %s elements", what, count, e->name);
    napi_throw_type_error(env, NULL, message);
    return NULL;
  }
  OrtValue* value = NULL;
  // Onnxruntime refuses a null pointer even for an empty tensor.
  static uint64_t empty;
  OrtStatus* status = ort->CreateTensorWithDataAsOrtValue(cpu_memory, count ? bytes : &empty, count * e->size, dims,
                                                          rank, e->ort, &value);
  if (throw_status(env, status)) return NULL;
  napi_create_reference(env, data, 1, &run->refs[run->n_refs++]);
  return value;
}

static void execute_run(napi_env env, void* data) {
  (void)env;
  Run* run = data;
  run->status = ort->Run(run->session, NULL, (const char* const*)run->in_names, (const OrtValue* const*)run->ins,
                         run->n_in, (const char* const*)run->out_names, run->n_out, run->outs);
}

static void release_value(napi_env env, void* data, void* hint) {
  (void)env;
  (void)data;
  ort->ReleaseValue((OrtValue*)hint);
}

// [type, dims, data] of output i: the bound array itself, or onnxruntime's memory in an external ArrayBuffer.
static napi_value output_value(napi_env env, Run* run, size_t i, napi_value outputs) {
  OrtValue* value = run->outs[i];
  OrtTensorTypeAndShapeInfo* shape_info;
  if (throw_status(env, ort->GetTensorTypeAndShape(value, &shape_info))) return NULL;
  ONNXTensorElementDataType t = ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED;
  size_t rank = 0, count = 0;
  OrtStatus* status = NULL;
  TRY(status, ort->GetTensorElementType(shape_info, &t));
  TRY(status, ort->GetDimensionsCount(shape_info, &rank));
  TRY(status, ort->GetTensorShapeElementCount(shape_info, &count));
  int64_t* dims = calloc(rank ? rank : 1, sizeof(int64_t));
  TRY(status, ort->GetDimensions(shape_info, dims, rank));
  ort->ReleaseTensorTypeAndShapeInfo(shape_info);
  if (throw_status(env, status)) {
    free(dims);
    return NULL;
  }
  const struct element* e = element_by_ort(t);
  napi_value triple, js_type, js_dims, array;
  napi_create_array_with_length(env, 3, &triple);
  napi_create_array_with_length(env, rank, &js_dims);
  for (size_t d = 0; d < rank; d++) {
    napi_value v;
    napi_create_int64(env, dims[d], &v);
    napi_set_element(env, js_dims, (uint32_t)d, v);
  }
  free(dims);
  if (!e) {
    napi_throw_type_error(env, NULL, "an output's element type is not supported");
    return NULL;
  }
  napi_create_string_utf8(env, e->name, NAPI_AUTO_LENGTH, &js_type);
  if (run->bound[i]) {
    napi_value spec = element_at(env, element_at(env, outputs, (uint32_t)i), 1);
    array = element_at(env, spec, 2);
  } else {
    napi_value buffer;
    void* bytes = NULL;
    if (throw_status(env, ort->GetTensorMutableData(value, &bytes))) return NULL;
    if (count == 0 || !bytes) {
      napi_create_arraybuffer(env, 0, NULL, &buffer);
    } else {
      // The ArrayBuffer owns the OrtValue from here on.
      if (napi_create_external_arraybuffer(env, bytes, count * e->size, release_value, value, &buffer) != napi_ok)
        return NULL;
      run->outs[i] = NULL;
    }
    if (napi_create_typedarray(env, e->js, count, buffer, 0, &array) != napi_ok) return NULL;
  }
  napi_set_element(env, triple, 0, js_type);
  napi_set_element(env, triple, 1, js_dims);
  napi_set_element(env, triple, 2, array);
  return triple;
}

static void complete_run(napi_env env, napi_status work_status, void* data) {
  Run* run = data;
  napi_value result = NULL, error = NULL, message;
  if (work_status != napi_ok || run->status) {
    const char* text = run->status ? ort->GetErrorMessage(run->status) : "the run was cancelled";
    napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &message);
    napi_create_error(env, NULL, message, &error);
  } else {
    // The outputs array, still referenced (refs[0]), says which arrays were bound.
    napi_value outputs;
    napi_get_reference_value(env, run->refs[0], &outputs);
    napi_create_array_with_length(env, run->n_out, &result);
    for (size_t i = 0; i < run->n_out && result; i++) {
      napi_value v = output_value(env, run, i, outputs);
      if (v) napi_set_element(env, result, (uint32_t)i, v);
      else result = NULL;
    }
    if (!result) {
      bool pending = false;
      napi_is_exception_pending(env, &pending);
      if (pending) napi_get_and_clear_last_exception(env, &error);
      else {
        napi_create_string_utf8(env, "could not return the outputs", NAPI_AUTO_LENGTH, &message);
        napi_create_error(env, NULL, message, &error);
      }
    }
  }
  if (result) napi_resolve_deferred(env, run->deferred, result);
  else napi_reject_deferred(env, run->deferred, error);
  free_run(env, run);
}

static napi_value run(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  NAPI(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc != 3) return throw_error(env, "run(session, inputs, outputs)");
  OrtSession* session = unwrap_session(env, argv[0]);
  if (!session) return NULL;
  Run* r = calloc(1, sizeof(Run));
  r->session = session;
  r->n_in = array_length(env, argv[1]);
  r->n_out = array_length(env, argv[2]);
  r->in_names = calloc(r->n_in + 1, sizeof(char*));
  r->ins = calloc(r->n_in + 1, sizeof(OrtValue*));
  r->out_names = calloc(r->n_out + 1, sizeof(char*));
  r->outs = calloc(r->n_out + 1, sizeof(OrtValue*));
  r->bound = calloc(r->n_out + 1, sizeof(int));
  r->refs = calloc(r->n_in + r->n_out + 1, sizeof(napi_ref));
  napi_create_reference(env, argv[2], 1, &r->refs[r->n_refs++]);
  napi_create_reference(env, argv[0], 1, &r->session_ref);
  char what[300];
  for (size_t i = 0; i < r->n_in; i++) {
    napi_value spec = element_at(env, argv[1], (uint32_t)i);
    r->in_names[i] = get_string(env, element_at(env, spec, 0));
    snprintf(what, sizeof what, "input %s", r->in_names[i] ? r->in_names[i] : "?");
    if (!r->in_names[i] || !(r->ins[i] = tensor_over(env, spec, 1, what, r))) {
      free_run(env, r);
      return NULL;
    }
  }
  for (size_t i = 0; i < r->n_out; i++) {
    napi_value spec = element_at(env, argv[2], (uint32_t)i), bind = element_at(env, spec, 1);
    r->out_names[i] = get_string(env, element_at(env, spec, 0));
    napi_valuetype kind;
    napi_typeof(env, bind, &kind);
    snprintf(what, sizeof what, "output %s", r->out_names[i] ? r->out_names[i] : "?");
    if (!r->out_names[i] || (kind == napi_object && !(r->outs[i] = tensor_over(env, bind, 0, what, r)))) {
      free_run(env, r);
      return NULL;
    }
    r->bound[i] = kind == napi_object;
  }
  napi_value promise, name;
  napi_create_promise(env, &r->deferred, &promise);
  napi_create_string_utf8(env, "chatmirror:ort-run", NAPI_AUTO_LENGTH, &name);
  if (napi_create_async_work(env, NULL, name, execute_run, complete_run, r, &r->work) != napi_ok ||
      napi_queue_async_work(env, r->work) != napi_ok) {
    free_run(env, r);
    return throw_error(env, "could not queue the run");
  }
  return promise;
}

NAPI_MODULE_INIT() {
  pthread_once(&init_once, init_ort);
  if (!ort) return throw_error(env, "libonnxruntime does not offer the C API version this binding was built for");
  if (init_status) {
    napi_throw_error(env, NULL, ort->GetErrorMessage(init_status));
    return NULL;
  }
  napi_property_descriptor props[] = {
      {"createSession", NULL, create_session, NULL, NULL, NULL, napi_default, NULL},
      {"describe", NULL, describe, NULL, NULL, NULL, napi_default, NULL},
      {"run", NULL, run, NULL, NULL, NULL, napi_default, NULL},
  };
  if (napi_define_properties(env, exports, 3, props) != napi_ok) return NULL;
  return exports;
}
