#ifndef CCURLSHIM_H
#define CCURLSHIM_H

#include <curl/curl.h>

/* Non-variadic wrappers: Swift cannot call curl's variadic setopt/getinfo functions. */
typedef size_t (*sy_write_callback)(char *data, size_t size, size_t count, void *user);

CURLcode sy_easy_setopt_long(CURL *handle, CURLoption option, long value);
CURLcode sy_easy_setopt_pointer(CURL *handle, CURLoption option, void *value);
CURLcode sy_easy_setopt_string(CURL *handle, CURLoption option, const char *value);
CURLcode sy_easy_setopt_write(CURL *handle, CURLoption option, sy_write_callback callback);
CURLcode sy_easy_getinfo_long(CURL *handle, CURLINFO info, long *value);
CURLcode sy_easy_getinfo_pointer(CURL *handle, CURLINFO info, void **value);
CURLMcode sy_multi_setopt_long(CURLM *multi, CURLMoption option, long value);

#endif
