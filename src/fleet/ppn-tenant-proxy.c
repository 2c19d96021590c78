#include "config.h"

#define G_LOG_DOMAIN "ppn-proxy"

#include <string.h>

#include "ppn-error.h"
#include "ppn-http.h"
#include "ppn-i18n.h"
#include "ppn-tenant-proxy.h"
#include "ppn-tenants-file.h"

#define PPN_LIST_LIMIT_DEFAULT 100
#define PPN_LIST_LIMIT_MAX 500
#define PPN_TOKEN_MAX_LEN 256
#define PPN_AUTH_RECORDS_PER_SECOND 20

struct _PpnTenantProxy {
	GObject parent_instance;
	PpnController *controller;
	PpnAudit *audit;
	PpnMetrics *metrics; /* not ours; NULL: none */
	SoupServer *server;
	gint64 auth_second; /* the second the budget below is for */
	guint auth_budget;  /* refused authentications still recorded one by one */
	guint auth_suppressed;
	guint auth_flush_id;
	PpnTenantsFile *tenants;
	gchar *tenants_path;
	gchar *listen;
	PpnVmLimits limits;
	gsize max_body;
	guint max_inflight;
	GHashTable *inflight; /* tenant name -> creates and deletes waiting */
	guint16 port;
};

G_DEFINE_TYPE (PpnTenantProxy, ppn_tenant_proxy, G_TYPE_OBJECT)

/* one request being served while it waits for the controller */
typedef struct {
	PpnTenantProxy *proxy;
	SoupServerMessage *msg;
	PpnTenant *tenant; /* NULL: not authenticated */
	gint64 started;
	gboolean gated; /* a create or delete: counts against max-inflight */
} PpnProxyCall;

/* the route a path belongs to, for the metrics' labels: a handful of
 * patterns, never the ids in the path */
static const gchar *
ppn_proxy_route_name (const gchar *path)
{
	static const gchar *const fixed[] = {"/v1/vms", "/v1/quota", "/v1/images", "/v1/audit", "/v1/ledger/head",
					     "/v1/ledger/consistency", "/v1/ledger/key", NULL};
	const gchar *name = ppn_metrics_route_name (path, fixed);

	if (name != NULL)
		return name;
	if (g_str_has_prefix (path, "/v1/vms/") && strchr (path + 8, '/') == NULL)
		return "/v1/vms/{id}";
	return "other";
}

/* every answer ends here: the access log and the request metrics */
static void
ppn_proxy_log (PpnTenantProxy *self, SoupServerMessage *msg, PpnTenant *tenant, gint64 started)
{
	/* the path only: never the query (it could carry a credential) nor
	 * any header */
	GUri *uri = soup_server_message_get_uri (msg);
	gdouble took = (g_get_monotonic_time () - started) / 1e6;
	const gchar *method = soup_server_message_get_method (msg);
	guint status = soup_server_message_get_status (msg);

	g_info ("%s %s -> %u tenant=%s %.1fms", method, g_uri_get_path (uri), status,
		tenant != NULL ? ppn_tenant_get_name (tenant) : "-", took * 1000.0);
	if (self->metrics != NULL)
		ppn_metrics_observe_request (self->metrics, "tenant", method, ppn_proxy_route_name (g_uri_get_path (uri)),
					     status, took);
}

static void
ppn_proxy_inflight_add (PpnTenantProxy *self, PpnTenant *tenant, gint delta)
{
	const gchar *name = ppn_tenant_get_name (tenant);
	guint n = GPOINTER_TO_UINT (g_hash_table_lookup (self->inflight, name));

	n = delta > 0 ? n + 1 : (n > 0 ? n - 1 : 0);
	if (n == 0)
		g_hash_table_remove (self->inflight, name);
	else
		g_hash_table_insert (self->inflight, g_strdup (name), GUINT_TO_POINTER (n));
}

/* A tenant may have so many creates and deletes waiting at once; past
 * that it is told to come back, instead of holding connections and
 * memory without bound. Other tenants are not affected. */
static gboolean
ppn_proxy_inflight_allows (PpnTenantProxy *self, SoupServerMessage *msg, PpnTenant *tenant)
{
	guint n = GPOINTER_TO_UINT (g_hash_table_lookup (self->inflight, ppn_tenant_get_name (tenant)));
	g_autoptr(GError) error = NULL;

	if (n < self->max_inflight)
		return TRUE;
	soup_message_headers_replace (soup_server_message_get_response_headers (msg), "Retry-After", "1");
	g_set_error (&error, PPN_ERROR, PPN_ERROR_TOO_MANY_REQUESTS,
		     _("Too many requests in flight: at most %u creates and deletes may wait at once; retry"
		       " shortly"),
		     self->max_inflight);
	ppn_http_reply_error (msg, error);
	return FALSE;
}

static PpnProxyCall *
ppn_proxy_call_new (PpnTenantProxy *proxy, SoupServerMessage *msg, PpnTenant *tenant, gboolean gated, gint64 started)
{
	PpnProxyCall *call = g_new0 (PpnProxyCall, 1);

	call->proxy = g_object_ref (proxy);
	call->msg = g_object_ref (msg);
	call->tenant = tenant != NULL ? ppn_tenant_ref (tenant) : NULL;
	call->started = started;
	call->gated = gated && tenant != NULL;
	soup_server_message_pause (msg);
	if (call->gated)
		ppn_proxy_inflight_add (proxy, tenant, 1);
	return call;
}

/* every paused message is resumed exactly once, here */
static void
ppn_proxy_call_finish (PpnProxyCall *call)
{
	ppn_proxy_log (call->proxy, call->msg, call->tenant, call->started);
	if (call->gated)
		ppn_proxy_inflight_add (call->proxy, call->tenant, -1);
	soup_server_message_unpause (call->msg);
	g_object_unref (call->msg);
	g_object_unref (call->proxy);
	g_clear_pointer (&call->tenant, ppn_tenant_unref);
	g_free (call);
}

static void
ppn_proxy_reply_error_literal (SoupServerMessage *msg, PpnError code, const gchar *message)
{
	g_autoptr(GError) error = g_error_new_literal (PPN_ERROR, code, message);

	ppn_http_reply_error (msg, error);
}

static void
ppn_proxy_reply_unauthorized (SoupServerMessage *msg)
{
	ppn_proxy_reply_error_literal (msg, PPN_ERROR_UNAUTHORIZED,
				       _("A valid bearer token is required (Authorization: Bearer TOKEN)"));
}

/* Every way of failing to authenticate gets the same answer, so a caller
 * learns nothing about which part was wrong. */
static PpnTenant *
ppn_proxy_authenticate (PpnTenantProxy *self, SoupServerMessage *msg, GHashTable *query, const gchar **why)
{
	PpnTenant *tenant;

	SoupMessageHeaders *hdrs = soup_server_message_get_request_headers (msg);
	/* get_list joins repeated headers with commas, which no token has:
	 * two Authorization headers are refused, not resolved either way */
	const gchar *auth = soup_message_headers_get_list (hdrs, "Authorization");
	const gchar *token;

	/* credentials in a URL end up in logs and histories: never accepted */
	if (query != NULL && (g_hash_table_contains (query, "access_token") || g_hash_table_contains (query, "token"))) {
		*why = "a credential in the query string";
		return NULL;
	}
	if (auth == NULL || g_ascii_strncasecmp (auth, "Bearer ", 7) != 0) {
		*why = auth == NULL ? "no Authorization header" : "not a bearer token";
		return NULL;
	}
	token = auth + 7;
	if (strlen (token) > PPN_TOKEN_MAX_LEN || strspn (token, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
								  "0123456789-_.~+/=") != strlen (token) ||
	    token[0] == '\0') {
		*why = "a malformed token (or two Authorization headers)";
		return NULL;
	}
	tenant = ppn_tenants_file_authenticate (self->tenants, token);
	if (tenant == NULL)
		*why = "an unknown token";
	return tenant;
}

static void
ppn_proxy_vm_reply (SoupServerMessage *msg, guint status, PpnVm *vm)
{
	g_autoptr(JsonNode) node = ppn_vm_to_json (vm);

	ppn_http_reply_json (msg, status, node);
}

/* the receipt of a create or destroy: the ledger index of its record,
 * for an inclusion proof later (GET /v1/audit) */
static void
ppn_proxy_set_receipt (SoupServerMessage *msg, guint64 receipt)
{
	g_autofree gchar *value = NULL;

	if (receipt == PPN_RECEIPT_NONE)
		return;
	value = g_strdup_printf ("%" G_GUINT64_FORMAT, receipt);
	soup_message_headers_replace (soup_server_message_get_response_headers (msg), "Ppn-Ledger-Index", value);
}

static void
ppn_proxy_create_cb (GObject *source, GAsyncResult *res, gpointer user_data)
{
	PpnProxyCall *call = user_data;
	g_autoptr(GError) error = NULL;
	guint64 receipt = PPN_RECEIPT_NONE;
	g_autoptr(PpnVm) vm = ppn_controller_create_vm_finish (PPN_CONTROLLER (source), res, &receipt, &error);

	ppn_proxy_set_receipt (call->msg, receipt);
	if (vm == NULL) {
		ppn_http_reply_error (call->msg, error);
	} else {
		g_autoptr(JsonNode) node = ppn_vm_to_json (vm);
		g_autoptr(JsonObject) obj = json_object_new ();
		json_object_set_int_member (obj, "ledger_index", (gint64)receipt);
		json_object_set_object_member (json_node_get_object (node), "receipt", g_steal_pointer (&obj));
		ppn_http_reply_json (call->msg, SOUP_STATUS_CREATED, node);
	}
	ppn_proxy_call_finish (call);
}

static void
ppn_proxy_delete_cb (GObject *source, GAsyncResult *res, gpointer user_data)
{
	PpnProxyCall *call = user_data;
	g_autoptr(GError) error = NULL;
	guint64 receipt = PPN_RECEIPT_NONE;
	gboolean ok = ppn_controller_delete_vm_finish (PPN_CONTROLLER (source), res, &receipt, &error);

	ppn_proxy_set_receipt (call->msg, receipt);
	if (!ok)
		ppn_http_reply_error (call->msg, error);
	else
		ppn_http_reply_no_content (call->msg);
	ppn_proxy_call_finish (call);
}

static void
ppn_proxy_show_cb (GObject *source, GAsyncResult *res, gpointer user_data)
{
	PpnProxyCall *call = user_data;
	g_autoptr(GError) error = NULL;
	g_autoptr(PpnVm) vm = ppn_controller_show_vm_finish (PPN_CONTROLLER (source), res, &error);

	if (vm == NULL)
		ppn_http_reply_error (call->msg, error);
	else
		ppn_proxy_vm_reply (call->msg, SOUP_STATUS_OK, vm);
	ppn_proxy_call_finish (call);
}

static void
ppn_proxy_create (PpnTenantProxy *self,
		  SoupServerMessage *msg,
		  PpnTenant *tenant,
		  const gchar *request_id,
		  gint64 started)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(JsonNode) body = ppn_http_read_json (msg, self->max_body, &error);
	g_autoptr(PpnVmRequest) req = NULL;

	if (body != NULL)
		req = ppn_vm_request_from_json (json_node_get_object (body), &self->limits, &error);
	if (req == NULL) {
		ppn_http_reply_error (msg, error);
		return;
	}
	if (!ppn_proxy_inflight_allows (self, msg, tenant))
		return;
	ppn_controller_create_vm_async (self->controller, tenant, g_steal_pointer (&req), request_id,
					ppn_proxy_create_cb, ppn_proxy_call_new (self, msg, tenant, TRUE, started));
}

static gboolean
ppn_proxy_parse_limit (GHashTable *query, guint *limit, GError **error)
{
	const gchar *str = query != NULL ? g_hash_table_lookup (query, "limit") : NULL;
	guint64 v;

	*limit = PPN_LIST_LIMIT_DEFAULT;
	if (str == NULL)
		return TRUE;
	if (!g_ascii_string_to_unsigned (str, 10, 1, PPN_LIST_LIMIT_MAX, &v, NULL)) {
		g_set_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
			     _("Parameter 'limit' must be a whole number from 1 to %d"), PPN_LIST_LIMIT_MAX);
		return FALSE;
	}
	*limit = (guint)v;
	return TRUE;
}

static gboolean
ppn_proxy_check_query (GHashTable *query, const gchar *const *allowed, GError **error)
{
	GHashTableIter iter;
	const gchar *key;

	if (query == NULL)
		return TRUE;
	g_hash_table_iter_init (&iter, query);
	while (g_hash_table_iter_next (&iter, (gpointer *)&key, NULL)) {
		if (allowed == NULL || !g_strv_contains (allowed, key)) {
			g_set_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST, _("Unknown parameter '%s'"), key);
			return FALSE;
		}
	}
	return TRUE;
}

static void
ppn_proxy_list (PpnTenantProxy *self, SoupServerMessage *msg, PpnTenant *tenant, GHashTable *query)
{
	static const gchar *const params[] = {"limit", "page_token", NULL};
	g_autoptr(GError) error = NULL;
	g_autoptr(GPtrArray) vms = NULL;
	g_autofree gchar *next = NULL;
	g_autoptr(JsonObject) obj = json_object_new ();
	g_autoptr(JsonNode) root = json_node_new (JSON_NODE_OBJECT);
	JsonArray *array;
	guint limit;

	if (!ppn_proxy_check_query (query, params, &error) || !ppn_proxy_parse_limit (query, &limit, &error)) {
		ppn_http_reply_error (msg, error);
		return;
	}
	vms = ppn_controller_list_vms (self->controller, tenant, limit,
				       query != NULL ? g_hash_table_lookup (query, "page_token") : NULL, &next,
				       &error);
	if (vms == NULL) {
		ppn_http_reply_error (msg, error);
		return;
	}
	array = json_array_sized_new (vms->len);
	for (guint i = 0; i < vms->len; i++)
		json_array_add_element (array, ppn_vm_to_json (g_ptr_array_index (vms, i)));
	json_object_set_array_member (obj, "vms", array);
	if (next != NULL)
		json_object_set_string_member (obj, "next_page_token", next);
	json_node_set_object (root, obj);
	ppn_http_reply_json (msg, SOUP_STATUS_OK, root);
}

static void
ppn_proxy_quota (PpnTenantProxy *self, SoupServerMessage *msg, PpnTenant *tenant)
{
	g_autoptr(JsonObject) obj = json_object_new ();
	g_autoptr(JsonNode) root = json_node_new (JSON_NODE_OBJECT);

	json_object_set_int_member (obj, "max_vms", ppn_tenant_get_max_vms (tenant));
	json_object_set_int_member (obj, "used", ppn_controller_get_usage (self->controller, tenant));
	json_node_set_object (root, obj);
	ppn_http_reply_json (msg, SOUP_STATUS_OK, root);
}

static void
ppn_proxy_images (PpnTenantProxy *self, SoupServerMessage *msg)
{
	g_autoptr(JsonObject) obj = json_object_new ();
	g_autoptr(JsonNode) root = json_node_new (JSON_NODE_OBJECT);

	json_object_set_member (obj, "images", ppn_controller_get_images (self->controller));
	json_node_set_object (root, obj);
	ppn_http_reply_json (msg, SOUP_STATUS_OK, root);
}

static gboolean
ppn_proxy_method_allowed (SoupServerMessage *msg, const gchar *allow)
{
	const gchar *method = soup_server_message_get_method (msg);
	g_auto(GStrv) methods = g_strsplit (allow, ", ", -1);

	if (g_strv_contains ((const gchar *const *)methods, method))
		return TRUE;
	soup_message_headers_replace (soup_server_message_get_response_headers (msg), "Allow", allow);
	ppn_proxy_reply_error_literal (msg, PPN_ERROR_METHOD_NOT_ALLOWED,
				       _("This method is not allowed on this resource"));
	return FALSE;
}

static gboolean
ppn_proxy_parse_index (GHashTable *query, const gchar *name, gboolean required, gint64 *value, GError **error)
{
	const gchar *str = query != NULL ? g_hash_table_lookup (query, name) : NULL;
	guint64 v;

	if (str == NULL && !required)
		return TRUE;
	if (str == NULL || !g_ascii_string_to_unsigned (str, 10, 0, G_MAXINT64, &v, NULL)) {
		g_set_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
			     _("Parameter '%s' must be a ledger index (a whole number from 0)"), name);
		return FALSE;
	}
	*value = (gint64)v;
	return TRUE;
}

/* the tenant's own audit entries with their proofs, and the ledger's
 * public facts (head, consistency, key) to check them with */
static void
ppn_proxy_audit_route (PpnTenantProxy *self,
		       SoupServerMessage *msg,
		       const gchar *path,
		       GHashTable *query,
		       PpnTenant *tenant)
{
	static const gchar *const page_params[] = {"limit", "page_token", NULL};
	static const gchar *const proof_params[] = {"first", "second", NULL};
	g_autoptr(GError) error = NULL;
	g_autoptr(JsonNode) node = NULL;

	if (!ppn_proxy_method_allowed (msg, "GET"))
		return;
	if (g_strcmp0 (path, "/v1/audit") == 0) {
		guint limit;
		gint64 after = -1;
		if (ppn_proxy_check_query (query, page_params, &error) && ppn_proxy_parse_limit (query, &limit, &error) &&
		    ppn_proxy_parse_index (query, "page_token", FALSE, &after, &error))
			node = ppn_audit_tenant_page (self->audit, ppn_tenant_get_name (tenant), after, limit, &error);
	} else if (g_strcmp0 (path, "/v1/ledger/head") == 0) {
		if (ppn_proxy_check_query (query, NULL, &error))
			node = ppn_audit_head_to_json (self->audit, &error);
	} else if (g_strcmp0 (path, "/v1/ledger/consistency") == 0) {
		gint64 first = 0, second = 0;
		if (ppn_proxy_check_query (query, proof_params, &error) &&
		    ppn_proxy_parse_index (query, "first", TRUE, &first, &error) &&
		    ppn_proxy_parse_index (query, "second", TRUE, &second, &error))
			node = ppn_audit_consistency_to_json (self->audit, (guint64)first, (guint64)second, &error);
	} else if (g_strcmp0 (path, "/v1/ledger/key") == 0) {
		if (ppn_proxy_check_query (query, NULL, &error))
			node = ppn_audit_key_to_json (self->audit);
	} else {
		g_set_error_literal (&error, PPN_ERROR, PPN_ERROR_NOT_FOUND, _("No such endpoint"));
	}
	if (node == NULL)
		ppn_http_reply_error (msg, error);
	else
		ppn_http_reply_json (msg, SOUP_STATUS_OK, node);
}

/* routing happens only after authentication, so the API's shape is not
 * visible to a caller without a token */
static void
ppn_proxy_route (PpnTenantProxy *self,
		 SoupServerMessage *msg,
		 const gchar *path,
		 GHashTable *query,
		 PpnTenant *tenant,
		 const gchar *request_id,
		 gint64 started)
{
	const gchar *method = soup_server_message_get_method (msg);
	g_autoptr(GError) error = NULL;

	if (g_strcmp0 (path, "/v1/vms") == 0) {
		if (!ppn_proxy_method_allowed (msg, "GET, POST"))
			return;
		if (method == SOUP_METHOD_GET) {
			ppn_proxy_list (self, msg, tenant, query);
			return;
		}
		if (!ppn_proxy_check_query (query, NULL, &error)) {
			ppn_http_reply_error (msg, error);
			return;
		}
		ppn_proxy_create (self, msg, tenant, request_id, started);
		return;
	}
	if (g_str_has_prefix (path, "/v1/vms/") && strchr (path + 8, '/') == NULL && path[8] != '\0') {
		const gchar *id = path + 8;
		if (!ppn_proxy_method_allowed (msg, "GET, DELETE"))
			return;
		if (!ppn_proxy_check_query (query, NULL, &error)) {
			ppn_http_reply_error (msg, error);
			return;
		}
		if (method == SOUP_METHOD_DELETE) {
			if (!ppn_proxy_inflight_allows (self, msg, tenant))
				return;
			ppn_controller_delete_vm_async (self->controller, tenant, id, request_id, ppn_proxy_delete_cb,
							ppn_proxy_call_new (self, msg, tenant, TRUE, started));
			return;
		}
		ppn_controller_show_vm_async (self->controller, tenant, id, request_id, ppn_proxy_show_cb,
					      ppn_proxy_call_new (self, msg, tenant, FALSE, started));
		return;
	}
	if (g_str_has_prefix (path, "/v1/audit") || g_str_has_prefix (path, "/v1/ledger/")) {
		ppn_proxy_audit_route (self, msg, path, query, tenant);
		return;
	}
	if (g_strcmp0 (path, "/v1/quota") == 0) {
		if (ppn_proxy_method_allowed (msg, "GET"))
			ppn_proxy_quota (self, msg, tenant);
		return;
	}
	if (g_strcmp0 (path, "/v1/images") == 0) {
		if (ppn_proxy_method_allowed (msg, "GET"))
			ppn_proxy_images (self, msg);
		return;
	}
	ppn_proxy_reply_error_literal (msg, PPN_ERROR_NOT_FOUND, _("No such endpoint"));
}

static void
ppn_proxy_refused_cb (GObject *source, GAsyncResult *res, gpointer user_data)
{
	PpnProxyCall *call = user_data;
	g_autoptr(GError) error = NULL;

	/* a refusal is answered either way; only an operation waits on it
	 * (the broken trail is logged loudly by the audit writer itself) */
	if (!ppn_audit_record_finish (PPN_AUDIT (source), res, NULL, &error))
		g_debug ("a refused authentication is not on the record: %s", error->message);
	ppn_proxy_reply_unauthorized (call->msg);
	ppn_proxy_call_finish (call);
}

/* the refusals of the last second beyond the budget, as one record */
static gboolean
ppn_proxy_flush_refusals_cb (gpointer user_data)
{
	PpnTenantProxy *self = PPN_TENANT_PROXY (user_data);
	g_autofree gchar *detail = NULL;
	PpnAuditEvent event = {
		.op = "authenticate",
		.outcome = "denied",
		.error = "unauthorized",
		.count = self->auth_suppressed,
	};

	self->auth_flush_id = 0;
	if (self->auth_suppressed == 0)
		return G_SOURCE_REMOVE;
	detail = g_strdup_printf ("%u more refused authentications within a second, recorded as one", self->auth_suppressed);
	event.detail = detail;
	self->auth_suppressed = 0;
	ppn_audit_record_async (self->audit, &event, NULL, NULL);
	return G_SOURCE_REMOVE;
}

/* A failed authentication is a denied attempt, on the record, with which
 * way it failed and the route, never what was sent (a path or a method
 * can carry a token too). Anyone can fail to authenticate, so past
 * PPN_AUTH_RECORDS_PER_SECOND a second the rest of that second's
 * refusals become one record with their count: the trail cannot be
 * flooded into filling its disk, and no refusal goes uncounted. */
static void
ppn_proxy_refuse (PpnTenantProxy *self,
		  SoupServerMessage *msg,
		  const gchar *path,
		  const gchar *request_id,
		  const gchar *why,
		  gint64 started)
{
	gint64 second = g_get_monotonic_time () / G_USEC_PER_SEC;
	g_autofree gchar *detail = NULL;
	PpnAuditEvent event = {
		.op = "authenticate",
		.outcome = "denied",
		.request_id = request_id,
		.error = "unauthorized",
	};

	if (second != self->auth_second) {
		self->auth_second = second;
		self->auth_budget = PPN_AUTH_RECORDS_PER_SECOND;
	}
	if (self->auth_budget == 0) {
		self->auth_suppressed++;
		if (self->auth_flush_id == 0)
			self->auth_flush_id = g_timeout_add_seconds (1, ppn_proxy_flush_refusals_cb, self);
		ppn_proxy_reply_unauthorized (msg);
		ppn_proxy_log (self, msg, NULL, started);
		return;
	}
	self->auth_budget--;
	detail = g_strdup_printf ("%s %s: %s", ppn_metrics_method_name (soup_server_message_get_method (msg)),
				  ppn_proxy_route_name (path), why);
	event.detail = detail;
	ppn_audit_record_async (self->audit, &event, ppn_proxy_refused_cb,
				ppn_proxy_call_new (self, msg, NULL, FALSE, started));
}

static void
ppn_proxy_handler (SoupServer *server,
		   SoupServerMessage *msg,
		   const char *path,
		   GHashTable *query,
		   gpointer user_data)
{
	PpnTenantProxy *self = PPN_TENANT_PROXY (user_data);
	gint64 started = g_get_monotonic_time ();
	const gchar *why = NULL;
	g_autoptr(PpnTenant) tenant = ppn_proxy_authenticate (self, msg, query, &why);
	g_autofree gchar *request_id = g_uuid_string_random ();

	soup_message_headers_replace (soup_server_message_get_response_headers (msg), "X-Request-Id", request_id);
	if (tenant == NULL) {
		ppn_proxy_refuse (self, msg, path, request_id, why, started);
		return;
	}
	ppn_proxy_route (self, msg, path, query, tenant, request_id, started);
	if (soup_server_message_get_status (msg) != 0)
		ppn_proxy_log (self, msg, tenant, started);
}

/* refuse oversized bodies from the headers, before libsoup reads them */
static void
ppn_proxy_early_handler (SoupServer *server,
			 SoupServerMessage *msg,
			 const char *path,
			 GHashTable *query,
			 gpointer user_data)
{
	PpnTenantProxy *self = PPN_TENANT_PROXY (user_data);
	g_autoptr(GError) error = NULL;

	if (!ppn_http_check_body_size (msg, self->max_body, &error))
		ppn_http_reply_error (msg, error);
}

gboolean
ppn_tenant_proxy_reload (PpnTenantProxy *self, GError **error)
{
	PpnTenantsFile *tenants;

	g_return_val_if_fail (PPN_IS_TENANT_PROXY (self), FALSE);
	tenants = ppn_tenants_file_load (self->tenants_path, error);
	if (tenants == NULL)
		return FALSE;
	g_clear_pointer (&self->tenants, ppn_tenants_file_free);
	self->tenants = tenants;
	g_message ("%u tenants loaded from %s", ppn_tenants_file_get_size (tenants), self->tenants_path);
	return TRUE;
}

/* for /metrics: the gate's queues, creates and deletes waiting per tenant */
static void
ppn_proxy_collect_metrics (GString *out, gpointer user_data)
{
	PpnTenantProxy *self = PPN_TENANT_PROXY (user_data);
	g_autoptr(GList) names = g_hash_table_get_keys (self->inflight);
	guint total = 0;

	names = g_list_sort (names, (GCompareFunc)g_strcmp0);
	ppn_metrics_family (out, "ppn_gate_inflight", "gauge",
			    "A tenant's creates and deletes waiting at the gate (only tenants with any).");
	for (GList *l = names; l != NULL; l = l->next) {
		guint n = GPOINTER_TO_UINT (g_hash_table_lookup (self->inflight, l->data));
		g_autofree gchar *tenant = ppn_metrics_escape (l->data);
		g_string_append_printf (out, "ppn_gate_inflight{tenant=\"%s\"} %u\n", tenant, n);
		total += n;
	}
	ppn_metrics_family (out, "ppn_gate_inflight_total", "gauge", "All tenants' creates and deletes waiting.");
	g_string_append_printf (out, "ppn_gate_inflight_total %u\n", total);
	ppn_metrics_family (out, "ppn_gate_inflight_limit", "gauge", "The max-inflight limit per tenant.");
	g_string_append_printf (out, "ppn_gate_inflight_limit %u\n", self->max_inflight);
}

void
ppn_tenant_proxy_set_metrics (PpnTenantProxy *self, PpnMetrics *metrics)
{
	g_return_if_fail (PPN_IS_TENANT_PROXY (self));
	self->metrics = metrics;
	ppn_metrics_add_collector (metrics, ppn_proxy_collect_metrics, self);
}

gboolean
ppn_tenant_proxy_listen (PpnTenantProxy *self, GError **error)
{
	g_return_val_if_fail (PPN_IS_TENANT_PROXY (self), FALSE);
	return ppn_http_listen (self->server, self->listen, &self->port, error);
}

guint16
ppn_tenant_proxy_get_port (PpnTenantProxy *self)
{
	g_return_val_if_fail (PPN_IS_TENANT_PROXY (self), 0);
	return self->port;
}

static void
ppn_tenant_proxy_finalize (GObject *object)
{
	PpnTenantProxy *self = PPN_TENANT_PROXY (object);

	if (self->server != NULL)
		soup_server_disconnect (self->server);
	if (self->auth_flush_id != 0) {
		g_source_remove (self->auth_flush_id);
		ppn_proxy_flush_refusals_cb (self);
	}
	g_clear_object (&self->server);
	g_clear_object (&self->controller);
	g_clear_object (&self->audit);
	g_clear_pointer (&self->tenants, ppn_tenants_file_free);
	g_free (self->tenants_path);
	g_free (self->listen);
	g_clear_pointer (&self->inflight, g_hash_table_unref);
	G_OBJECT_CLASS (ppn_tenant_proxy_parent_class)->finalize (object);
}

static void
ppn_tenant_proxy_class_init (PpnTenantProxyClass *klass)
{
	G_OBJECT_CLASS (klass)->finalize = ppn_tenant_proxy_finalize;
}

static void
ppn_tenant_proxy_init (PpnTenantProxy *self)
{
}

PpnTenantProxy *
ppn_tenant_proxy_new (PpnController *controller,
		      PpnAudit *audit,
		      const PpnFleetConfig *config,
		      GTlsCertificate *cert,
		      GError **error)
{
	g_autoptr(PpnTenantProxy) self = g_object_new (PPN_TYPE_TENANT_PROXY, NULL);

	g_return_val_if_fail (PPN_IS_CONTROLLER (controller), NULL);
	g_return_val_if_fail (PPN_IS_AUDIT (audit), NULL);
	self->controller = g_object_ref (controller);
	self->audit = g_object_ref (audit);
	self->tenants_path = g_strdup (config->tenants_file);
	self->listen = g_strdup (config->tenant_listen);
	self->limits.max_vcpus = config->max_vcpus;
	self->limits.max_memory_mib = config->max_memory_mib;
	self->limits.max_forwards = config->max_forwards;
	self->max_body = config->max_body;
	self->max_inflight = config->max_inflight;
	self->inflight = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
	if (!ppn_tenant_proxy_reload (self, error))
		return NULL;
	/* tenants do not present client certificates */
	self->server = ppn_http_server_new (cert, NULL, error);
	if (self->server == NULL)
		return NULL;
	ppn_http_server_set_max_body (self->server, self->max_body);
	ppn_http_server_set_keep_alive (self->server, config->http_keep_alive);
	soup_server_add_early_handler (self->server, NULL, ppn_proxy_early_handler, self, NULL);
	soup_server_add_handler (self->server, NULL, ppn_proxy_handler, self, NULL);
	return g_steal_pointer (&self);
}
