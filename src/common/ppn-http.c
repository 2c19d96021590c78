#include "config.h"

#define G_LOG_DOMAIN "ppn"

#include <string.h>

#include "ppn-config.h"
#include "ppn-error.h"
#include "ppn-http.h"
#include "ppn-i18n.h"
#include "ppn-json.h"

/* libsoup asks the server message whether to accept the client's
 * certificate; decide from our own verification of the chain against the
 * fleet CA only, not from whatever the TLS backend computed */
#define PPN_HTTP_PEER_KEY "ppn-verified-peer-certificate"
/* set on a server (and copied to each of its messages) that keeps
 * connections open; see ppn_http_server_set_keep_alive() */
#define PPN_HTTP_KEEP_ALIVE_KEY "ppn-keep-alive"
/* the client CA, on each message of a server that requires client
 * certificates: a later request on a kept-alive connection has no
 * handshake of its own, and its peer certificate is verified again */
#define PPN_HTTP_CLIENT_CA_KEY "ppn-client-ca"

static gboolean
ppn_http_accept_certificate_cb (SoupServerMessage *msg,
				GTlsCertificate *cert,
				GTlsCertificateFlags errors,
				gpointer user_data)
{
	GTlsDatabase *ca = G_TLS_DATABASE (user_data);
	g_autoptr(GError) error = NULL;
	GTlsCertificateFlags flags;

	flags = g_tls_database_verify_chain (ca, cert, G_TLS_DATABASE_PURPOSE_AUTHENTICATE_CLIENT, NULL, NULL,
					     G_TLS_DATABASE_VERIFY_NONE, NULL, &error);
	if (error != NULL || flags != 0) {
		g_message ("refused a client certificate (verification flags 0x%x%s%s)", flags,
			   error != NULL ? ": " : "", error != NULL ? error->message : "");
		return FALSE;
	}
	/* the verified certificate goes with the message the handshake belongs
	 * to; unless keep-alive is on, every connection carries one request
	 * (see Connection: close below), so no later message needs it (with
	 * keep-alive, ppn_http_peer_identity() verifies a later message's
	 * peer again). Not with the socket: libsoup 3.2 leaks each
	 * connection's GSocket, and a certificate hanging off it would leak
	 * with it. */
	g_object_set_data_full (G_OBJECT (msg), PPN_HTTP_PEER_KEY, g_object_ref (cert), g_object_unref);
	return TRUE;
}

static void
ppn_http_request_started_cb (SoupServer *server, SoupServerMessage *msg, gpointer user_data)
{
	g_signal_connect_object (msg, "accept-certificate", G_CALLBACK (ppn_http_accept_certificate_cb), user_data,
				 0);
	g_object_set_data_full (G_OBJECT (msg), PPN_HTTP_CLIENT_CA_KEY, g_object_ref (user_data), g_object_unref);
}

#define PPN_HTTP_MAX_BODY_KEY "ppn-max-body"
#define PPN_HTTP_TOO_LARGE_KEY "ppn-body-too-large"
#define PPN_HTTP_BODY_SEEN_KEY "ppn-body-seen"

/* past the limit the body is no longer kept: memory stays bounded
 * whatever a client sends, chunked or not, and the handler answers 413 */
static void
ppn_http_body_overflow (SoupServerMessage *msg)
{
	SoupMessageBody *body = soup_server_message_get_request_body (msg);

	g_object_set_data (G_OBJECT (msg), PPN_HTTP_TOO_LARGE_KEY, GINT_TO_POINTER (1));
	soup_message_body_set_accumulate (body, FALSE);
	soup_message_body_truncate (body);
}

static gsize
ppn_http_server_max_body (SoupServerMessage *msg)
{
	return GPOINTER_TO_SIZE (g_object_get_data (G_OBJECT (msg), PPN_HTTP_MAX_BODY_KEY));
}

static void
ppn_http_got_headers_cb (SoupServerMessage *msg, gpointer user_data)
{
	goffset len = soup_message_headers_get_content_length (soup_server_message_get_request_headers (msg));

	if (len > (goffset)ppn_http_server_max_body (msg))
		ppn_http_body_overflow (msg);
}

static void
ppn_http_got_chunk_cb (SoupServerMessage *msg, GBytes *chunk, gpointer user_data)
{
	gsize seen = GPOINTER_TO_SIZE (g_object_get_data (G_OBJECT (msg), PPN_HTTP_BODY_SEEN_KEY));

	seen += g_bytes_get_size (chunk);
	g_object_set_data (G_OBJECT (msg), PPN_HTTP_BODY_SEEN_KEY, GSIZE_TO_POINTER (seen));
	if (seen > ppn_http_server_max_body (msg) &&
	    g_object_get_data (G_OBJECT (msg), PPN_HTTP_TOO_LARGE_KEY) == NULL)
		ppn_http_body_overflow (msg);
}

static void
ppn_http_limit_started_cb (SoupServer *server, SoupServerMessage *msg, gpointer user_data)
{
	g_object_set_data (G_OBJECT (msg), PPN_HTTP_MAX_BODY_KEY,
			   g_object_get_data (G_OBJECT (server), PPN_HTTP_MAX_BODY_KEY));
	/* from the start, so that answers libsoup makes itself (a malformed
	 * request line, say) close their connection too */
	if (g_object_get_data (G_OBJECT (server), PPN_HTTP_KEEP_ALIVE_KEY) != NULL)
		g_object_set_data (G_OBJECT (msg), PPN_HTTP_KEEP_ALIVE_KEY, GINT_TO_POINTER (1));
	else
		soup_message_headers_replace (soup_server_message_get_response_headers (msg), "Connection", "close");
	g_signal_connect (msg, "got-headers", G_CALLBACK (ppn_http_got_headers_cb), NULL);
	g_signal_connect (msg, "got-chunk", G_CALLBACK (ppn_http_got_chunk_cb), NULL);
}

/* the largest request body @server keeps; see ppn_http_check_body_size() */
void
ppn_http_server_set_max_body (SoupServer *server, gsize max_body)
{
	g_return_if_fail (SOUP_IS_SERVER (server));
	g_object_set_data (G_OBJECT (server), PPN_HTTP_MAX_BODY_KEY, GSIZE_TO_POINTER (max_body));
}

/* Keep connections open between requests (HTTP/1.1 keep-alive), instead
 * of closing each after its answer. Only safe with a libsoup that frees
 * the connections clients close (3.3 and later, see
 * ppn_http_keep_alive_is_safe()); on 3.2 every kept-alive connection a
 * client closes stays in CLOSE-WAIT with its descriptor. */
void
ppn_http_server_set_keep_alive (SoupServer *server, gboolean keep_alive)
{
	g_return_if_fail (SOUP_IS_SERVER (server));
	g_object_set_data (G_OBJECT (server), PPN_HTTP_KEEP_ALIVE_KEY, keep_alive ? GINT_TO_POINTER (1) : NULL);
}

/* libsoup 3.3.0 (commit d20c6601) frees kept-alive connections that the
 * client closed; 3.2 leaks them */
gboolean
ppn_http_keep_alive_is_safe (void)
{
	return soup_get_major_version () > 3 || (soup_get_major_version () == 3 && soup_get_minor_version () >= 3);
}

/* with @client_ca, the handshake requires a client certificate issued by
 * that CA: a caller without one never reaches a handler */
SoupServer *
ppn_http_server_new (GTlsCertificate *cert, GTlsDatabase *client_ca, GError **error)
{
	g_autoptr(SoupServer) server = NULL;

	g_return_val_if_fail (G_IS_TLS_CERTIFICATE (cert), NULL);
	server = soup_server_new ("server-header", PACKAGE_NAME "/" PACKAGE_VERSION " ",
				  "tls-certificate", cert, NULL);
	if (server == NULL) {
		g_set_error_literal (error, PPN_ERROR, PPN_ERROR_INTERNAL, _("Cannot create the HTTP server"));
		return NULL;
	}
	ppn_http_server_set_max_body (server, PPN_HTTP_MAX_BODY_DEFAULT);
	g_signal_connect (server, "request-started", G_CALLBACK (ppn_http_limit_started_cb), NULL);
	if (client_ca != NULL) {
		soup_server_set_tls_database (server, client_ca);
		soup_server_set_tls_auth_mode (server, G_TLS_AUTHENTICATION_REQUIRED);
		g_signal_connect_object (server, "request-started", G_CALLBACK (ppn_http_request_started_cb),
					 client_ca, 0);
	}
	return g_steal_pointer (&server);
}

gboolean
ppn_http_listen (SoupServer *server, const gchar *address, guint16 *bound_port, GError **error)
{
	g_autofree gchar *host = NULL;
	guint16 port = 0;
	g_autoptr(GInetAddress) inet = NULL;
	g_autoptr(GSocketAddress) sockaddr = NULL;

	if (!ppn_config_parse_address (address, &host, &port, error))
		return FALSE;
	inet = g_inet_address_new_from_string (host);
	if (inet == NULL && g_strcmp0 (host, "localhost") == 0)
		inet = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
	if (inet == NULL) {
		g_set_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
			     _("Listen address '%s' must be a numeric IP address"), address);
		return FALSE;
	}
	sockaddr = g_inet_socket_address_new (inet, port);
	if (!soup_server_listen (server, sockaddr, SOUP_SERVER_LISTEN_HTTPS, error)) {
		g_prefix_error (error, _("Cannot listen on %s: "), address);
		return FALSE;
	}
	/* read the bound port off our own listening socket: an ephemeral
	 * port (0) is only known after the bind */
	if (bound_port != NULL) {
		g_autoptr(GSList) listeners = soup_server_get_listeners (server);
		for (GSList *l = listeners; l != NULL; l = l->next) {
			g_autoptr(GSocketAddress) local = g_socket_get_local_address (l->data, NULL);
			if (G_IS_INET_SOCKET_ADDRESS (local))
				*bound_port = g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (local));
		}
	}
	return TRUE;
}

static void
ppn_http_set_json_body (SoupServerMessage *msg, JsonNode *node)
{
	gsize len = 0;
	g_autofree gchar *data = ppn_json_to_data (node, &len);
	g_autofree gchar *with_nl = g_strconcat (data, "\n", NULL);

	soup_server_message_set_response (msg, "application/json", SOUP_MEMORY_COPY, with_nl, len + 1);
}

/* libsoup 3.2's server never closes a kept-alive connection the client
 * closed: every one stays in CLOSE-WAIT with its descriptor until the
 * process runs out of them and stops accepting (measured: one leaked
 * socket per connection, with or without TLS). Until a fixed libsoup is
 * the minimum, every answer closes its connection. */
static void
ppn_http_set_common_headers (SoupServerMessage *msg)
{
	SoupMessageHeaders *hdrs = soup_server_message_get_response_headers (msg);

	soup_message_headers_replace (hdrs, "Cache-Control", "no-store");
	if (g_object_get_data (G_OBJECT (msg), PPN_HTTP_KEEP_ALIVE_KEY) == NULL)
		soup_message_headers_replace (hdrs, "Connection", "close");
}

void
ppn_http_reply_json (SoupServerMessage *msg, guint status, JsonNode *node)
{
	soup_server_message_set_status (msg, status, NULL);
	ppn_http_set_common_headers (msg);
	ppn_http_set_json_body (msg, node);
}

void
ppn_http_reply_no_content (SoupServerMessage *msg)
{
	soup_server_message_set_status (msg, SOUP_STATUS_NO_CONTENT, NULL);
	ppn_http_set_common_headers (msg);
	soup_server_message_set_response (msg, NULL, SOUP_MEMORY_STATIC, NULL, 0);
}

void
ppn_http_reply_error (SoupServerMessage *msg, const GError *error)
{
	PpnError code = PPN_ERROR_INTERNAL;
	g_autoptr(JsonBuilder) b = json_builder_new ();
	g_autoptr(JsonNode) root = NULL;

	if (error != NULL && error->domain == PPN_ERROR)
		code = (PpnError)error->code;
	json_builder_begin_object (b);
	json_builder_set_member_name (b, "error");
	json_builder_begin_object (b);
	json_builder_set_member_name (b, "code");
	json_builder_add_string_value (b, ppn_error_to_string (code));
	json_builder_set_member_name (b, "message");
	/* internal details stay in the log, not in the answer */
	if (code == PPN_ERROR_INTERNAL || error == NULL)
		json_builder_add_string_value (b, _("Internal error"));
	else
		json_builder_add_string_value (b, error->message);
	json_builder_end_object (b);
	json_builder_end_object (b);
	root = json_builder_get_root (b);
	if (code == PPN_ERROR_UNAUTHORIZED)
		soup_message_headers_replace (soup_server_message_get_response_headers (msg),
					      "WWW-Authenticate", "Bearer realm=\"ppn\"");
	ppn_http_reply_json (msg, ppn_error_to_http_status (code), root);
}

gboolean
ppn_http_check_body_size (SoupServerMessage *msg, gsize max_body, GError **error)
{
	SoupMessageHeaders *hdrs = soup_server_message_get_request_headers (msg);
	goffset len = soup_message_headers_get_content_length (hdrs);

	if (len > (goffset)max_body || g_object_get_data (G_OBJECT (msg), PPN_HTTP_TOO_LARGE_KEY) != NULL) {
		g_set_error (error, PPN_ERROR, PPN_ERROR_PAYLOAD_TOO_LARGE,
			     _("The request body is larger than %" G_GSIZE_FORMAT " bytes"), max_body);
		return FALSE;
	}
	return TRUE;
}

JsonNode *
ppn_http_read_json (SoupServerMessage *msg, gsize max_body, GError **error)
{
	SoupMessageHeaders *hdrs = soup_server_message_get_request_headers (msg);
	SoupMessageBody *body = soup_server_message_get_request_body (msg);
	g_autoptr(GBytes) bytes = NULL;
	const gchar *ctype = soup_message_headers_get_content_type (hdrs, NULL);
	gsize len = 0;
	const gchar *data;

	if (ctype == NULL || g_ascii_strcasecmp (ctype, "application/json") != 0) {
		g_set_error_literal (error, PPN_ERROR, PPN_ERROR_UNSUPPORTED_MEDIA_TYPE,
				     _("The request body must be sent as Content-Type: application/json"));
		return NULL;
	}
	if (!ppn_http_check_body_size (msg, max_body, error))
		return NULL;
	bytes = soup_message_body_flatten (body);
	data = g_bytes_get_data (bytes, &len);
	if (len > max_body) {
		g_set_error (error, PPN_ERROR, PPN_ERROR_PAYLOAD_TOO_LARGE,
			     _("The request body is larger than %" G_GSIZE_FORMAT " bytes"), max_body);
		return NULL;
	}
	if (len == 0) {
		g_set_error_literal (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST, _("The request body is empty"));
		return NULL;
	}
	return ppn_json_parse_object (data, len, PPN_JSON_MAX_DEPTH, error);
}

gboolean
ppn_http_peer_identity (SoupServerMessage *msg, PpnTlsRole *role, gchar **name, GError **error)
{
	/* only a certificate our accept-certificate handler verified counts,
	 * so a server built without a client CA is never mistaken for one */
	GTlsCertificate *peer = g_object_get_data (G_OBJECT (msg), PPN_HTTP_PEER_KEY);
	GTlsDatabase *ca = g_object_get_data (G_OBJECT (msg), PPN_HTTP_CLIENT_CA_KEY);

	/* a later request on a kept-alive connection: the connection's peer
	 * passed the handshake, and is verified once more here all the same */
	if (peer == NULL && ca != NULL && g_object_get_data (G_OBJECT (msg), PPN_HTTP_KEEP_ALIVE_KEY) != NULL) {
		GTlsCertificate *conn_peer = soup_server_message_get_tls_peer_certificate (msg);
		if (conn_peer != NULL &&
		    g_tls_database_verify_chain (ca, conn_peer, G_TLS_DATABASE_PURPOSE_AUTHENTICATE_CLIENT, NULL,
						 NULL, G_TLS_DATABASE_VERIFY_NONE, NULL, NULL) == 0)
			peer = conn_peer;
	}
	if (peer == NULL) {
		g_set_error_literal (error, PPN_ERROR, PPN_ERROR_UNAUTHORIZED,
				     _("A client certificate issued by the fleet CA is required"));
		return FALSE;
	}
	return ppn_tls_certificate_identity (peer, role, name, error);
}

SoupSession *
ppn_http_session_new (GTlsDatabase *ca, guint timeout_seconds)
{
	return soup_session_new_with_options ("tls-database", ca,
					      "timeout", timeout_seconds,
					      "idle-timeout", 60,
					      "user-agent", PACKAGE_NAME "/" PACKAGE_VERSION " ",
					      NULL);
}

SoupMessage *
ppn_http_request_new (const gchar *method,
		      const gchar *url,
		      JsonNode *body,
		      GTlsCertificate *client_cert,
		      GError **error)
{
	g_autoptr(GUri) uri = g_uri_parse (url, SOUP_HTTP_URI_FLAGS, error);
	g_autoptr(SoupMessage) msg = NULL;

	if (uri == NULL) {
		g_prefix_error (error, _("Invalid URL %s: "), url);
		return NULL;
	}
	msg = soup_message_new_from_uri (method, uri);
	if (body != NULL) {
		gsize len = 0;
		g_autofree gchar *data = ppn_json_to_data (body, &len);
		g_autoptr(GBytes) bytes = g_bytes_new_take (g_steal_pointer (&data), len);
		soup_message_set_request_body_from_bytes (msg, "application/json", bytes);
	}
	if (client_cert != NULL)
		soup_message_set_tls_client_certificate (msg, client_cert);
	return g_steal_pointer (&msg);
}

/* 2xx: the JSON body (NULL for an empty one); else a GError with the
 * code and message the peer sent */
JsonNode *
ppn_http_response_parse (SoupMessage *msg, GBytes *body, GError **error)
{
	guint status = soup_message_get_status (msg);
	gsize len = 0;
	const gchar *data = body != NULL ? g_bytes_get_data (body, &len) : NULL;
	g_autoptr(JsonParser) parser = json_parser_new_immutable ();
	JsonNode *root = NULL;

	if (len > 0 && json_parser_load_from_data (parser, data, (gssize)len, NULL))
		root = json_parser_get_root (parser);

	if (SOUP_STATUS_IS_SUCCESSFUL (status)) {
		if (len == 0)
			return NULL;
		if (root == NULL || !JSON_NODE_HOLDS_OBJECT (root)) {
			g_set_error (error, PPN_ERROR, PPN_ERROR_UNAVAILABLE,
				     _("The server answered %u with a body that is not a JSON object"), status);
			return NULL;
		}
		return json_node_ref (root);
	}
	/* the peer's body is untrusted: json-glib's typed getters warn (and
	 * g_set_error_literal crashes on NULL) when a member is missing or of
	 * another type, so look at each node before reading it */
	if (root != NULL && JSON_NODE_HOLDS_OBJECT (root)) {
		JsonNode *err_node = json_object_get_member (json_node_get_object (root), "error");
		if (err_node != NULL && JSON_NODE_HOLDS_OBJECT (err_node)) {
			JsonObject *err = json_node_get_object (err_node);
			const gchar *code_str = NULL;
			const gchar *message = NULL;
			PpnError code = PPN_ERROR_INTERNAL;
			if (!ppn_json_get_string (err, "code", FALSE, &code_str, NULL) ||
			    !ppn_error_from_string (code_str, &code))
				code = PPN_ERROR_INTERNAL;
			if (!ppn_json_get_string (err, "message", FALSE, &message, NULL) || message == NULL)
				message = ppn_error_to_string (code);
			g_set_error_literal (error, PPN_ERROR, code, message);
			return NULL;
		}
	}
	g_set_error (error, PPN_ERROR, status >= 500 ? PPN_ERROR_UNAVAILABLE : PPN_ERROR_INTERNAL,
		     _("The server answered %u %s"), status,
		     soup_message_get_reason_phrase (msg) != NULL ? soup_message_get_reason_phrase (msg) : "");
	return NULL;
}

static void
ppn_http_send_json_cb (GObject *source, GAsyncResult *res, gpointer user_data)
{
	g_autoptr(GTask) task = user_data;
	SoupMessage *msg = g_task_get_task_data (task);
	g_autoptr(GError) error = NULL;
	g_autoptr(GBytes) body = soup_session_send_and_read_finish (SOUP_SESSION (source), res, &error);
	JsonNode *node;

	if (body == NULL) {
		ppn_error_convert (&error);
		if (error->code == PPN_ERROR_INTERNAL)
			error->code = PPN_ERROR_UNAVAILABLE;
		g_task_return_error (task, g_steal_pointer (&error));
		return;
	}
	node = ppn_http_response_parse (msg, body, &error);
	if (error != NULL) {
		g_task_return_error (task, g_steal_pointer (&error));
		return;
	}
	g_task_return_pointer (task, node, (GDestroyNotify)json_node_unref);
}

void
ppn_http_send_json_async (SoupSession *session,
			  SoupMessage *msg,
			  GCancellable *cancellable,
			  GAsyncReadyCallback callback,
			  gpointer user_data)
{
	GTask *task = g_task_new (session, cancellable, callback, user_data);

	g_task_set_source_tag (task, ppn_http_send_json_async);
	g_task_set_task_data (task, g_object_ref (msg), g_object_unref);
	soup_session_send_and_read_async (session, msg, G_PRIORITY_DEFAULT, cancellable,
					  ppn_http_send_json_cb, task);
}

/* NULL without error means a successful empty answer (204) */
JsonNode *
ppn_http_send_json_finish (SoupSession *session, GAsyncResult *res, GError **error)
{
	g_return_val_if_fail (g_task_is_valid (res, session), NULL);
	return g_task_propagate_pointer (G_TASK (res), error);
}

JsonNode *
ppn_http_send_json (SoupSession *session, SoupMessage *msg, GCancellable *cancellable, GError **error)
{
	g_autoptr(GBytes) body = soup_session_send_and_read (session, msg, cancellable, error);

	if (body == NULL) {
		ppn_error_convert (error);
		if (error != NULL && *error != NULL && (*error)->code == PPN_ERROR_INTERNAL)
			(*error)->code = PPN_ERROR_UNAVAILABLE;
		return NULL;
	}
	return ppn_http_response_parse (msg, body, error);
}
