/* Paths of the fedlora.v1.Federation methods (proto/fedlora.proto) and the generated types. */
#ifndef FEDLORA_FEDERATION_API_H
#define FEDLORA_FEDERATION_API_H

#include "fedlora.pb-c.h"

#define FED_JOIN "/fedlora.v1.Federation/Join"
#define FED_AWAIT_ROUND "/fedlora.v1.Federation/AwaitRound"
#define FED_DOWNLOAD_ADAPTER "/fedlora.v1.Federation/DownloadAdapter"
#define FED_SUBMIT_UPDATE "/fedlora.v1.Federation/SubmitUpdate"
#define FED_GET_STATUS "/fedlora.v1.Federation/GetStatus"

/* Payloads travel in chunks of this size: far below the receive limit, large enough to be cheap. */
#define FED_CHUNK_BYTES ((size_t)1 << 20)

#endif
