#pragma once

#include <json-glib/json-glib.h>
#include <libsoup/soup.h>

#include "ppn-tls.h"

G_BEGIN_DECLS

#define PPN_HTTP_MAX_BODY_DEFAULT (64 * 1024)

SoupServer *ppn_http_server_new (GTlsCertificate *cert, GTlsDatabase *client_ca, GError **error);
void ppn_http_server_set_max_body (SoupServer *server, gsize max_body);
void ppn_http_server_set_keep_alive (SoupServer *server, gboolean keep_alive);
gboolean ppn_http_keep_alive_is_safe (void);
gboolean ppn_http_listen (SoupServer *server, const gchar *address, guint16 *bound_port, GError **error);
gboolean ppn_http_check_body_size (SoupServerMessage *msg, gsize max_body, GError **error);

void ppn_http_reply_json (SoupServerMessage *msg, guint status, JsonNode *node);
void ppn_http_reply_error (SoupServerMessage *msg, const GError *error);
void ppn_http_reply_no_content (SoupServerMessage *msg);
JsonNode *ppn_http_read_json (SoupServerMessage *msg, gsize max_body, GError **error);
gboolean ppn_http_peer_identity (SoupServerMessage *msg, PpnTlsRole *role, gchar **name, GError **error);

SoupSession *ppn_http_session_new (GTlsDatabase *ca, guint timeout_seconds);
SoupMessage *ppn_http_request_new (const gchar *method,
				   const gchar *url,
				   JsonNode *body,
				   GTlsCertificate *client_cert,
				   GError **error);
JsonNode *ppn_http_response_parse (SoupMessage *msg, GBytes *body, GError **error);
void ppn_http_send_json_async (SoupSession *session,
			       SoupMessage *msg,
			       GCancellable *cancellable,
			       GAsyncReadyCallback callback,
			       gpointer user_data);
JsonNode *ppn_http_send_json_finish (SoupSession *session, GAsyncResult *res, GError **error);
JsonNode *ppn_http_send_json (SoupSession *session, SoupMessage *msg, GCancellable *cancellable, GError **error);

G_END_DECLS
