/* Paths of the fedlora.v1.Federation methods (proto/fedlora.proto) and the generated types. */
#ifndef FEDLORA_FEDERATION_API_H
#define FEDLORA_FEDERATION_API_H

#include "fedlora.pb-c.h"

#define FED_JOIN "/fedlora.v1.Federation/Join"
#define FED_AWAIT_ROUND "/fedlora.v1.Federation/AwaitRound"
#define FED_DOWNLOAD_ADAPTER "/fedlora.v1.Federation/DownloadAdapter"
#define FED_SUBMIT_UPDATE "/fedlora.v1.Federation/SubmitUpdate"
#define FED_GET_STATUS "/fedlora.v1.Federation/GetStatus"
#define FED_SECAGG_ADVERTISE "/fedlora.v1.Federation/SecAggAdvertise"
#define FED_SECAGG_GET_ADVERTS "/fedlora.v1.Federation/SecAggGetAdverts"
#define FED_SECAGG_SHARE_KEYS "/fedlora.v1.Federation/SecAggShareKeys"
#define FED_SECAGG_GET_SHARES "/fedlora.v1.Federation/SecAggGetShares"
#define FED_SECAGG_SUBMIT_MASKED "/fedlora.v1.Federation/SecAggSubmitMasked"
#define FED_SECAGG_GET_SURVIVORS "/fedlora.v1.Federation/SecAggGetSurvivors"
#define FED_SECAGG_UNMASK "/fedlora.v1.Federation/SecAggUnmask"
/* Bounds of what secure aggregation accepts from the network. */
#define FED_SECAGG_CERT_MAX 16384

/* Payloads travel in chunks of this size: far below the receive limit, large enough to be cheap. */
#define FED_CHUNK_BYTES ((size_t)1 << 20)

#endif
