#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define PPN_ERROR (ppn_error_quark ())

/* One error domain for the whole project. The codes map 1:1 to the API's
 * error codes, so the HTTP layer turns a GError into a status and a code
 * without looking at the message. */
typedef enum {
	PPN_ERROR_INTERNAL,		  /* 500 internal */
	PPN_ERROR_INVALID_REQUEST,	  /* 400 invalid_request */
	PPN_ERROR_UNAUTHORIZED,		  /* 401 unauthorized */
	PPN_ERROR_FORBIDDEN,		  /* 403 forbidden */
	PPN_ERROR_QUOTA_EXCEEDED,	  /* 403 quota_exceeded */
	PPN_ERROR_NOT_FOUND,		  /* 404 not_found */
	PPN_ERROR_METHOD_NOT_ALLOWED,	  /* 405 method_not_allowed */
	PPN_ERROR_CONFLICT,		  /* 409 conflict */
	PPN_ERROR_PAYLOAD_TOO_LARGE,	  /* 413 payload_too_large */
	PPN_ERROR_UNSUPPORTED_MEDIA_TYPE, /* 415 unsupported_media_type */
	PPN_ERROR_TOO_MANY_REQUESTS,	  /* 429 too_many_requests */
	PPN_ERROR_NO_CAPACITY,		  /* 503 no_capacity */
	PPN_ERROR_UNAVAILABLE,		  /* 503 unavailable */
	PPN_ERROR_LAST
} PpnError;

GQuark ppn_error_quark (void);
guint ppn_error_to_http_status (PpnError code);
const gchar *ppn_error_to_string (PpnError code);
gboolean ppn_error_from_string (const gchar *str, PpnError *code);
void ppn_error_convert (GError **error);

G_END_DECLS
