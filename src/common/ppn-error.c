#include "config.h"

#define G_LOG_DOMAIN "ppn"

#include <gio/gio.h>

#include "ppn-error.h"

G_DEFINE_QUARK (ppn-error-quark, ppn_error)

static const struct {
	guint status;
	const gchar *code;
} ppn_error_table[PPN_ERROR_LAST] = {
	[PPN_ERROR_INTERNAL] = {500, "internal"},
	[PPN_ERROR_INVALID_REQUEST] = {400, "invalid_request"},
	[PPN_ERROR_UNAUTHORIZED] = {401, "unauthorized"},
	[PPN_ERROR_FORBIDDEN] = {403, "forbidden"},
	[PPN_ERROR_QUOTA_EXCEEDED] = {403, "quota_exceeded"},
	[PPN_ERROR_NOT_FOUND] = {404, "not_found"},
	[PPN_ERROR_METHOD_NOT_ALLOWED] = {405, "method_not_allowed"},
	[PPN_ERROR_CONFLICT] = {409, "conflict"},
	[PPN_ERROR_PAYLOAD_TOO_LARGE] = {413, "payload_too_large"},
	[PPN_ERROR_UNSUPPORTED_MEDIA_TYPE] = {415, "unsupported_media_type"},
	[PPN_ERROR_TOO_MANY_REQUESTS] = {429, "too_many_requests"},
	[PPN_ERROR_NO_CAPACITY] = {503, "no_capacity"},
	[PPN_ERROR_UNAVAILABLE] = {503, "unavailable"},
};

guint
ppn_error_to_http_status (PpnError code)
{
	if ((guint)code >= PPN_ERROR_LAST)
		return 500;
	return ppn_error_table[code].status;
}

const gchar *
ppn_error_to_string (PpnError code)
{
	if ((guint)code >= PPN_ERROR_LAST)
		return "internal";
	return ppn_error_table[code].code;
}

gboolean
ppn_error_from_string (const gchar *str, PpnError *code)
{
	g_return_val_if_fail (code != NULL, FALSE);
	if (str == NULL)
		return FALSE;
	for (guint i = 0; i < PPN_ERROR_LAST; i++) {
		if (g_strcmp0 (str, ppn_error_table[i].code) == 0) {
			*code = (PpnError)i;
			return TRUE;
		}
	}
	return FALSE;
}

/* foreign errors are converted where they enter: GIO errors that mean
 * "try later" become unavailable, the rest internal */
void
ppn_error_convert (GError **error)
{
	GError *e;

	if (error == NULL || *error == NULL)
		return;
	e = *error;
	if (e->domain == PPN_ERROR)
		return;
	if (g_error_matches (e, G_IO_ERROR, G_IO_ERROR_TIMED_OUT) ||
	    g_error_matches (e, G_IO_ERROR, G_IO_ERROR_CONNECTION_REFUSED) ||
	    g_error_matches (e, G_IO_ERROR, G_IO_ERROR_HOST_UNREACHABLE) ||
	    g_error_matches (e, G_IO_ERROR, G_IO_ERROR_NETWORK_UNREACHABLE) ||
	    g_error_matches (e, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED) ||
	    g_error_matches (e, G_IO_ERROR, G_IO_ERROR_BROKEN_PIPE)) {
		e->domain = PPN_ERROR;
		e->code = PPN_ERROR_UNAVAILABLE;
		return;
	}
	e->domain = PPN_ERROR;
	e->code = PPN_ERROR_INTERNAL;
}
