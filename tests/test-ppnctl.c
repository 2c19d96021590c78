#include "config.h"

#define G_LOG_DOMAIN "test-ppnctl"

#include <gio/gio.h>
#include <glib/gstdio.h>
#include <libsoup/soup.h>
#include <string.h>
#include <sys/stat.h>

#include "ppn-error.h"
#include "ppn-http.h"
#include "ppn-json.h"
#include "ppn-tls.h"
#include "ppn-token.h"

/* runs the built ppnctl against a canned HTTPS server in this process:
 * what is tested is the client, its output and its exit codes */

#define TEST_TOKEN "ppn_CANARYtesttoken0123456789abcdefghijklmnopq"
#define VM1_ID "0123456789abcdef"

static struct {
	gchar *ppnctl;
	gchar *dir;
	gchar *ca_dir;
	gchar *ca_pem;
	gchar *url;
	SoupServer *server;
	GPtrArray *requests; /* "GET /v1/vms?limit=2" */
	gchar *last_body;
	gchar *last_authorization;
} t;

/* ---- running ppnctl ---------------------------------------------------- */

typedef struct {
	gboolean done;
	gchar *out;
	gchar *err;
	GError *error;
} RunState;

static void
run_done_cb (GObject *source, GAsyncResult *res, gpointer user_data)
{
	RunState *st = user_data;

	g_subprocess_communicate_utf8_finish (G_SUBPROCESS (source), res, &st->out, &st->err, &st->error);
	st->done = TRUE;
}

/* @env: NULL-terminated "KEY=VALUE" added to an environment without PPN_* */
static int
run_ppnctlv (const gchar *const *env, gchar **out, gchar **err, const gchar *const *args)
{
	g_autoptr(GSubprocessLauncher) launcher =
		g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE | G_SUBPROCESS_FLAGS_STDERR_PIPE);
	g_autoptr(GPtrArray) argv = g_ptr_array_new ();
	g_autoptr(GSubprocess) proc = NULL;
	g_autoptr(GError) error = NULL;
	RunState st = {FALSE, NULL, NULL, NULL};

	g_subprocess_launcher_unsetenv (launcher, "PPN_URL");
	g_subprocess_launcher_unsetenv (launcher, "PPN_CA");
	g_subprocess_launcher_unsetenv (launcher, "PPN_TOKEN");
	g_subprocess_launcher_setenv (launcher, "LC_ALL", "C.UTF-8", TRUE);
	for (guint i = 0; env != NULL && env[i] != NULL; i++) {
		g_auto(GStrv) kv = g_strsplit (env[i], "=", 2);
		g_subprocess_launcher_setenv (launcher, kv[0], kv[1], TRUE);
	}
	g_subprocess_launcher_set_cwd (launcher, t.dir);
	g_ptr_array_add (argv, t.ppnctl);
	for (guint i = 0; args[i] != NULL; i++)
		g_ptr_array_add (argv, (gpointer)args[i]);
	g_ptr_array_add (argv, NULL);
	proc = g_subprocess_launcher_spawnv (launcher, (const gchar *const *)argv->pdata, &error);
	g_assert_no_error (error);
	/* the canned server lives in this process's main context */
	g_subprocess_communicate_utf8_async (proc, NULL, NULL, run_done_cb, &st);
	while (!st.done)
		g_main_context_iteration (NULL, TRUE);
	g_assert_no_error (st.error);
	g_assert_true (g_subprocess_get_if_exited (proc));
	if (out != NULL)
		*out = g_steal_pointer (&st.out);
	if (err != NULL)
		*err = g_steal_pointer (&st.err);
	g_free (st.out);
	g_free (st.err);
	return g_subprocess_get_exit_status (proc);
}

static int
run_ppnctl (const gchar *const *env, gchar **out, gchar **err, ...) G_GNUC_NULL_TERMINATED;
static int
run_ppnctl (const gchar *const *env, gchar **out, gchar **err, ...)
{
	g_autoptr(GPtrArray) args = g_ptr_array_new ();
	va_list ap;

	va_start (ap, err);
	for (const gchar *a = va_arg (ap, const gchar *); a != NULL; a = va_arg (ap, const gchar *))
		g_ptr_array_add (args, (gpointer)a);
	va_end (ap);
	g_ptr_array_add (args, NULL);
	return run_ppnctlv (env, out, err, (const gchar *const *)args->pdata);
}

static const gchar *const *
server_env (void)
{
	static gchar *env[4];

	if (env[0] == NULL) {
		env[0] = g_strconcat ("PPN_URL=", t.url, NULL);
		env[1] = g_strconcat ("PPN_CA=", t.ca_pem, NULL);
		env[2] = g_strdup ("PPN_TOKEN=" TEST_TOKEN);
	}
	return (const gchar *const *)env;
}

static void
assert_exit (int got, int expected, const gchar *what, const gchar *err)
{
	if (got != expected)
		g_test_fail_printf ("%s: expected exit %d, got %d (stderr: %s)", what, expected, got,
				    err != NULL ? err : "");
}

static guint
file_mode (const gchar *path)
{
	struct stat st;

	g_assert_cmpint (stat (path, &st), ==, 0);
	return st.st_mode & 07777;
}

/* ---- the canned server ------------------------------------------------- */

static JsonNode *
vm_json (const gchar *id, const gchar *name, const gchar *state, gint64 vcpus, gint64 mem, const gchar *forwards)
{
	g_autofree gchar *data = g_strdup_printf (
		"{\"id\":\"%s\",\"name\":\"%s\",\"image\":\"test-guest\",\"vcpus\":%" G_GINT64_FORMAT
		",\"memory_mib\":%" G_GINT64_FORMAT ",\"state\":\"%s\",\"node\":\"node1\",\"port_forwards\":%s,"
		"\"created_at\":\"2026-12-03T15:00:00Z\"}",
		id, name, vcpus, mem, state, forwards);
	g_autoptr(GError) error = NULL;
	JsonNode *node = json_from_string (data, &error);

	g_assert_no_error (error);
	return node;
}

static JsonNode *
vm1 (void)
{
	return vm_json (VM1_ID, "web1", "running", 1, 256,
			"[{\"guest_port\":80,\"proto\":\"tcp\",\"host_address\":\"127.0.0.1\",\"host_port\":20000},"
			"{\"guest_port\":53,\"proto\":\"udp\",\"host_address\":\"127.0.0.1\",\"host_port\":20001}]");
}

static void
reply_text (SoupServerMessage *msg, guint status, const gchar *json)
{
	soup_server_message_set_status (msg, status, NULL);
	soup_server_message_set_response (msg, "application/json", SOUP_MEMORY_COPY, json, strlen (json));
}

static void
reply_list (SoupServerMessage *msg, GHashTable *query)
{
	const gchar *page = query != NULL ? g_hash_table_lookup (query, "page_token") : NULL;
	g_autoptr(JsonArray) vms = json_array_new ();
	g_autoptr(JsonObject) obj = json_object_new ();
	g_autoptr(JsonNode) root = NULL;

	if (page == NULL) {
		json_array_add_element (vms, vm1 ());
		json_array_add_element (vms, vm_json ("1111111111111111", "database-server", "pending", 4, 16384, "[]"));
		json_object_set_string_member (obj, "next_page_token", "page 2/&x");
	} else if (g_strcmp0 (page, "page 2/&x") == 0) {
		/* a hostile name: the table must not pass the escape on */
		json_array_add_element (vms, vm_json ("2222222222222222", "x\\u001b[2Jclear", "running", 2, 512,
						      "[{\"guest_port\":22,\"proto\":\"tcp\",\"host_address\":\"::1\","
						      "\"host_port\":20002}]"));
	} else {
		g_autoptr(GError) e = g_error_new (PPN_ERROR, PPN_ERROR_INVALID_REQUEST, "bad page token");
		ppn_http_reply_error (msg, e);
		return;
	}
	json_object_set_array_member (obj, "vms", g_steal_pointer (&vms));
	root = json_node_init_object (json_node_alloc (), obj);
	ppn_http_reply_json (msg, 200, root);
}

static void
reply_canned_error (SoupServerMessage *msg, const gchar *id)
{
	static const struct {
		const gchar *id;
		PpnError code;
	} errors[] = {
		{"0000000000000400", PPN_ERROR_INVALID_REQUEST},
		{"0000000000000401", PPN_ERROR_UNAUTHORIZED},
		{"0000000000000403", PPN_ERROR_QUOTA_EXCEEDED},
		{"0000000000000430", PPN_ERROR_FORBIDDEN},
		{"0000000000000404", PPN_ERROR_NOT_FOUND},
		{"0000000000000409", PPN_ERROR_CONFLICT},
		{"0000000000000413", PPN_ERROR_PAYLOAD_TOO_LARGE},
		{"0000000000000415", PPN_ERROR_UNSUPPORTED_MEDIA_TYPE},
		{"0000000000000429", PPN_ERROR_TOO_MANY_REQUESTS},
		{"0000000000000500", PPN_ERROR_INTERNAL},
		{"0000000000000503", PPN_ERROR_NO_CAPACITY},
		{"0000000000000530", PPN_ERROR_UNAVAILABLE},
	};

	for (guint i = 0; i < G_N_ELEMENTS (errors); i++) {
		if (g_strcmp0 (id, errors[i].id) == 0) {
			g_autoptr(GError) e = g_error_new (PPN_ERROR, errors[i].code, "canned %s", id);
			ppn_http_reply_error (msg, e);
			return;
		}
	}
	if (g_strcmp0 (id, "00000000000000ee") == 0) {
		/* a server that echoes the credentials it got */
		g_autofree gchar *json = g_strdup_printf (
			"{\"error\":{\"code\":\"not_found\",\"message\":\"no VM for %s\\u001b[31m\"}}",
			t.last_authorization);
		reply_text (msg, 404, json);
	} else if (g_strcmp0 (id, "00000000000000b1") == 0) {
		reply_text (msg, 404, "{\"message\":\"not the ppn error shape\"}");
	} else if (g_strcmp0 (id, "00000000000000b2") == 0) {
		reply_text (msg, 404, "{\"error\":{\"code\":\"not_found\",\"message\":5}}");
	} else if (g_strcmp0 (id, "00000000000000b3") == 0) {
		reply_text (msg, 404, "{\"error\":\"not_found\"}");
	} else if (g_strcmp0 (id, "0000000000000302") == 0) {
		soup_server_message_set_redirect (msg, 302, "/v1/vms/" VM1_ID);
	} else {
		g_autoptr(GError) e = g_error_new (PPN_ERROR, PPN_ERROR_NOT_FOUND, "No VM with id %s", id);
		ppn_http_reply_error (msg, e);
	}
}

static void
reply_create (SoupServerMessage *msg)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(JsonNode) body = ppn_http_read_json (msg, PPN_HTTP_MAX_BODY_DEFAULT, &error);
	const gchar *name = NULL;
	JsonObject *obj;
	g_autoptr(JsonNode) vm = NULL;

	if (body == NULL) {
		ppn_http_reply_error (msg, error);
		return;
	}
	g_free (t.last_body);
	t.last_body = ppn_json_to_data (body, NULL);
	obj = json_node_get_object (body);
	if (!ppn_json_get_string (obj, "name", TRUE, &name, &error)) {
		ppn_http_reply_error (msg, error);
		return;
	}
	if (g_strcmp0 (name, "over") == 0) {
		g_set_error (&error, PPN_ERROR, PPN_ERROR_QUOTA_EXCEEDED, "Tenant has 4 of 4 VMs");
		ppn_http_reply_error (msg, error);
		return;
	}
	if (g_strcmp0 (name, "full") == 0) {
		g_set_error (&error, PPN_ERROR, PPN_ERROR_NO_CAPACITY, "No node has room");
		ppn_http_reply_error (msg, error);
		return;
	}
	vm = vm_json ("3f9a0c12b7e4d5a6", name, "running", 2, 512,
		      "[{\"guest_port\":80,\"proto\":\"tcp\",\"host_address\":\"127.0.0.1\",\"host_port\":20000}]");
	ppn_http_reply_json (msg, 201, vm);
}

static void
server_cb (SoupServer *server, SoupServerMessage *msg, const char *path, GHashTable *query, gpointer user_data)
{
	const gchar *method = soup_server_message_get_method (msg);
	const gchar *auth =
		soup_message_headers_get_one (soup_server_message_get_request_headers (msg), "Authorization");
	GUri *uri = soup_server_message_get_uri (msg);

	g_ptr_array_add (t.requests, g_strdup_printf ("%s %s%s%s", method, path,
						      g_uri_get_query (uri) != NULL ? "?" : "",
						      g_uri_get_query (uri) != NULL ? g_uri_get_query (uri) : ""));
	g_free (t.last_authorization);
	t.last_authorization = g_strdup (auth);
	if (g_strcmp0 (auth, "Bearer " TEST_TOKEN) != 0) {
		g_autoptr(GError) e = g_error_new_literal (PPN_ERROR, PPN_ERROR_UNAUTHORIZED, "Unknown token");
		ppn_http_reply_error (msg, e);
		return;
	}
	if (g_strcmp0 (method, "GET") == 0 && g_strcmp0 (path, "/v1/vms") == 0) {
		reply_list (msg, query);
	} else if (g_strcmp0 (method, "POST") == 0 && g_strcmp0 (path, "/v1/vms") == 0) {
		reply_create (msg);
	} else if (g_strcmp0 (method, "GET") == 0 && g_strcmp0 (path, "/v1/vms/" VM1_ID) == 0) {
		g_autoptr(JsonNode) vm = vm1 ();
		ppn_http_reply_json (msg, 200, vm);
	} else if (g_strcmp0 (method, "DELETE") == 0 && g_strcmp0 (path, "/v1/vms/" VM1_ID) == 0) {
		ppn_http_reply_no_content (msg);
	} else if (g_str_has_prefix (path, "/v1/vms/")) {
		reply_canned_error (msg, path + strlen ("/v1/vms/"));
	} else if (g_strcmp0 (method, "GET") == 0 && g_strcmp0 (path, "/v1/quota") == 0) {
		reply_text (msg, 200, "{\"max_vms\":4,\"used\":1}");
	} else if (g_strcmp0 (method, "GET") == 0 && g_strcmp0 (path, "/v1/images") == 0) {
		reply_text (msg, 200, "{\"images\":[{\"name\":\"test-guest\",\"description\":\"Tiny busybox guest\"}]}");
	} else {
		g_autoptr(GError) e = g_error_new (PPN_ERROR, PPN_ERROR_NOT_FOUND, "No such call");
		ppn_http_reply_error (msg, e);
	}
}

static void
server_start (void)
{
	g_autoptr(GError) error = NULL;
	g_autofree gchar *cert_pem = g_build_filename (t.dir, "server.pem", NULL);
	g_autofree gchar *key_pem = g_build_filename (t.dir, "server-key.pem", NULL);
	static const gchar *const sans[] = {"127.0.0.1", NULL};
	g_autoptr(GTlsCertificate) cert = NULL;
	guint16 port = 0;

	t.ca_dir = g_build_filename (t.dir, "server-ca", NULL);
	t.ca_pem = g_build_filename (t.ca_dir, "ca.pem", NULL);
	g_assert_true (ppn_tls_ca_create (t.ca_dir, "test-ca", 2, &error));
	g_assert_no_error (error);
	g_assert_true (ppn_tls_issue (t.ca_dir, PPN_TLS_ROLE_FLEET, "fleet", sans, 2, cert_pem, key_pem, &error));
	g_assert_no_error (error);
	cert = ppn_tls_load_certificate (cert_pem, key_pem, &error);
	g_assert_no_error (error);
	t.server = ppn_http_server_new (cert, NULL, &error);
	g_assert_no_error (error);
	soup_server_add_handler (t.server, NULL, server_cb, NULL, NULL);
	g_assert_true (ppn_http_listen (t.server, "127.0.0.1:0", &port, &error));
	g_assert_no_error (error);
	g_assert_cmpuint (port, !=, 0);
	t.url = g_strdup_printf ("https://127.0.0.1:%u", port);
	t.requests = g_ptr_array_new_with_free_func (g_free);
}

/* ---- usage ------------------------------------------------------------- */

static void
test_usage_errors (void)
{
	static const gchar *const cases[][16] = {
		{NULL},
		{"bogus", NULL},
		{"--bogus", "vm", "list", NULL},
		{"vm", NULL},
		{"vm", "bogus", NULL},
		{"vm", "list", "extra", NULL},
		{"vm", "list", "--limit", "0", NULL},
		{"vm", "list", "--limit", "501", NULL},
		{"vm", "list", "--limit", "ten", NULL},
		{"vm", "create", NULL},
		{"vm", "create", "web1", NULL},
		{"vm", "create", "a</name><devices>", "--image", "test-guest", NULL},
		{"vm", "create", "web1", "--image", "test-guest", "--forward", "0", NULL},
		{"vm", "create", "web1", "--image", "test-guest", "--forward", "80/sctp", NULL},
		{"vm", "create", "web1", "--image", "test-guest", "--forward", "80", "--forward", "80/tcp"},
		{"vm", "create", "web1", "--image", "test-guest", "--vcpus", "0", NULL},
		{"vm", "show", NULL},
		{"vm", "show", "../../etc/passwd", NULL},
		{"vm", "delete", "0123456789ABCDEF", NULL},
		{"vm", "list", "--url", "http://127.0.0.1:1", NULL},
		{"quota", "extra", NULL},
		{"ca", NULL},
		{"ca", "init", NULL},
		{"cert", "issue", "--ca-dir", "x", "--role", "root", "--name", "n", "--cert", "c", "--key", "k"},
		{"cert", "issue", "--ca-dir", "x", "--role", "agent", "--name", "n", "--cert", "c", NULL},
		{"tenant", "add", NULL},
		{"tenant", "add", "a'b", "--tenants-file", "tenants.conf", NULL},
		{"tenant", "add", "alice", NULL},
		{"tenant", "add", "alice", "--tenants-file", "t.conf", "--max-vms", "0"},
		{"node", NULL},
		{"node", "bogus", NULL},
		{"node", "list", "extra", NULL},
		{"node", "list", "--mesh-url", "http://127.0.0.1:9443", NULL},
		/* no operator certificate: nothing is sent */
		{"node", "list", NULL},
	};

	for (guint i = 0; i < G_N_ELEMENTS (cases); i++) {
		g_autofree gchar *out = NULL;
		g_autofree gchar *err = NULL;
		g_autofree gchar *what = NULL;
		g_autoptr(GPtrArray) args = g_ptr_array_new ();
		int status;

		for (guint j = 0; j < G_N_ELEMENTS (cases[i]) && cases[i][j] != NULL; j++)
			g_ptr_array_add (args, (gpointer)cases[i][j]);
		g_ptr_array_add (args, NULL);
		what = g_strjoinv (" ", (gchar **)args->pdata);
		/* a server is there, so "nothing was sent" is checked too */
		g_ptr_array_set_size (t.requests, 0);
		status = run_ppnctlv (server_env (), &out, &err, (const gchar *const *)args->pdata);
		assert_exit (status, 2, what, err);
		if (!g_str_has_prefix (err, "ppnctl: "))
			g_test_fail_printf ("ppnctl %s: expected stderr 'ppnctl: ...', got '%s'", what, err);
		if (t.requests->len != 0)
			g_test_fail_printf ("ppnctl %s: expected no request, got '%s'", what,
					    (gchar *)g_ptr_array_index (t.requests, 0));
	}
	/* not usage errors: missing CA and token, without a server */
	{
		g_autofree gchar *err = NULL;
		assert_exit (run_ppnctl (NULL, NULL, &err, "vm", "list", NULL), 2, "vm list without CA", err);
		g_assert_nonnull (strstr (err, "PPN_CA"));
	}
}

static void
test_help (void)
{
	g_autofree gchar *out = NULL;
	g_autofree gchar *err = NULL;
	g_autofree gchar *out2 = NULL;

	assert_exit (run_ppnctl (NULL, &out, &err, "--help", NULL), 0, "--help", err);
	g_assert_nonnull (strstr (out, "Exit status"));
	g_assert_nonnull (strstr (out, "7  no capacity"));
	g_assert_nonnull (strstr (out, "tenant"));
	g_assert_null (strstr (out, "--token "));
	assert_exit (run_ppnctl (NULL, &out2, NULL, "vm", "create", "--help", NULL), 0, "vm create --help", NULL);
	g_assert_nonnull (strstr (out2, "--forward"));
	g_assert_nonnull (strstr (out2, "--token-file"));
}

/* ---- local commands ---------------------------------------------------- */

static void
test_pki (void)
{
	g_autofree gchar *dir = g_build_filename (t.dir, "pki", NULL);
	g_autofree gchar *ca = g_build_filename (dir, "ca", NULL);
	g_autofree gchar *ca_pem = g_build_filename (ca, "ca.pem", NULL);
	g_autofree gchar *ca_key = g_build_filename (ca, "ca-key.pem", NULL);
	g_autofree gchar *cert = g_build_filename (dir, "agent.pem", NULL);
	g_autofree gchar *key = g_build_filename (dir, "agent-key.pem", NULL);
	g_autofree gchar *ca_before = NULL;
	g_autofree gchar *ca_after = NULL;
	g_autofree gchar *err = NULL;
	g_autofree gchar *err2 = NULL;
	g_autofree gchar *out = NULL;
	g_autoptr(GError) error = NULL;
	g_autoptr(GTlsCertificate) c = NULL;
	g_autoptr(GTlsDatabase) db = NULL;
	g_autoptr(GSocketConnectable) id = g_network_address_new ("node1.example", 0);
	g_autofree gchar *name = NULL;
	PpnTlsRole role = PPN_TLS_ROLE_UNKNOWN;

	assert_exit (run_ppnctl (NULL, NULL, &err, "ca", "init", "--dir", ca, "--name", "fleet-ca", NULL), 0,
		     "ca init", err);
	g_assert_cmphex (file_mode (ca_key), ==, 0600);
	g_assert_cmphex (file_mode (ca_pem), ==, 0644);
	g_assert_true (g_file_get_contents (ca_pem, &ca_before, NULL, NULL));
	g_clear_pointer (&err, g_free);
	assert_exit (run_ppnctl (NULL, NULL, &err, "ca", "init", "--dir", ca, NULL), 6, "ca init twice", err);
	g_assert_nonnull (strstr (err, "already exists"));
	g_assert_true (g_file_get_contents (ca_pem, &ca_after, NULL, NULL));
	g_assert_cmpstr (ca_before, ==, ca_after);

	assert_exit (run_ppnctl (NULL, &out, &err2, "--json", "cert", "issue", "--ca-dir", ca, "--role", "agent",
				 "--name", "node1", "--san", "node1.example", "--san", "10.0.0.1", "--cert", cert,
				 "--key", key, "--days", "10", NULL),
		     0, "cert issue", err2);
	g_assert_nonnull (strstr (out, "\"role\" : \"agent\""));
	g_assert_cmphex (file_mode (key), ==, 0600);
	g_assert_cmphex (file_mode (cert), ==, 0644);
	c = ppn_tls_load_certificate (cert, key, &error);
	g_assert_no_error (error);
	db = ppn_tls_load_ca (ca_pem, &error);
	g_assert_no_error (error);
	g_assert_cmphex (g_tls_database_verify_chain (db, c, G_TLS_DATABASE_PURPOSE_AUTHENTICATE_SERVER, id, NULL,
						      G_TLS_DATABASE_VERIFY_NONE, NULL, &error),
			 ==, 0);
	g_assert_true (ppn_tls_certificate_identity (c, &role, &name, &error));
	g_assert_cmpint (role, ==, PPN_TLS_ROLE_AGENT);
	g_assert_cmpstr (name, ==, "node1");
}

static void
test_cert_default_sans (void)
{
	g_autofree gchar *cert = g_build_filename (t.dir, "op.pem", NULL);
	g_autofree gchar *key = g_build_filename (t.dir, "op-key.pem", NULL);
	g_autofree gchar *err = NULL;
	g_autoptr(GError) error = NULL;
	g_autoptr(GTlsCertificate) c = NULL;
	g_autoptr(GTlsDatabase) db = NULL;
	const gchar *hosts[] = {"127.0.0.1", "localhost"};

	assert_exit (run_ppnctl (NULL, NULL, &err, "cert", "issue", "--ca-dir", t.ca_dir, "--role", "operator",
				 "--name", "ops", "--cert", cert, "--key", key, NULL),
		     0, "cert issue without --san", err);
	c = ppn_tls_load_certificate (cert, key, &error);
	g_assert_no_error (error);
	db = ppn_tls_load_ca (t.ca_pem, &error);
	g_assert_no_error (error);
	for (guint i = 0; i < G_N_ELEMENTS (hosts); i++) {
		g_autoptr(GSocketConnectable) id = g_network_address_new (hosts[i], 0);
		GTlsCertificateFlags flags = g_tls_database_verify_chain (
			db, c, G_TLS_DATABASE_PURPOSE_AUTHENTICATE_SERVER, id, NULL, G_TLS_DATABASE_VERIFY_NONE, NULL,
			&error);
		if (flags != 0)
			g_test_fail_printf ("default SANs: expected %s to verify, got flags 0x%x", hosts[i], flags);
	}
}

static void
test_tenant_add (void)
{
	g_autofree gchar *path = g_build_filename (t.dir, "tenants.conf", NULL);
	static const gchar *const existing = "# ppn tenants\n"
					     "[tenant bob]\n"
					     "# bob pays in advance\n"
					     "token-hash=sha256:0000000000000000000000000000000000000000000000000000000000000000\n"
					     "max-vms=2\n";
	g_autofree gchar *out = NULL;
	g_autofree gchar *err = NULL;
	g_autofree gchar *data = NULL;
	g_autofree gchar *hash = NULL;
	g_autofree gchar *stored = NULL;
	g_autofree gchar *before = NULL;
	g_autofree gchar *after = NULL;
	g_autofree gchar *err2 = NULL;
	g_autofree gchar *out3 = NULL;
	g_autoptr(GKeyFile) kf = g_key_file_new ();
	g_autoptr(GError) error = NULL;
	g_autoptr(JsonNode) json = NULL;
	const gchar *token3;
	guint8 digest[PPN_TOKEN_DIGEST_LEN];

	g_assert_true (g_file_set_contents_full (path, existing, -1, G_FILE_SET_CONTENTS_NONE, 0644, &error));
	assert_exit (run_ppnctl (NULL, &out, &err, "tenant", "add", "alice", "--tenants-file", path, "--max-vms",
				 "3", NULL),
		     0, "tenant add", err);
	/* stdout is the token and a newline, nothing else */
	g_assert_true (g_str_has_suffix (out, "\n"));
	out[strlen (out) - 1] = '\0';
	g_assert_null (strchr (out, '\n'));
	g_assert_true (g_str_has_prefix (out, PPN_TOKEN_PREFIX));
	g_assert_null (strstr (err, out));
	g_assert_cmphex (file_mode (path), ==, 0600);

	g_assert_true (g_file_get_contents (path, &data, NULL, &error));
	if (strstr (data, out) != NULL || strstr (data, out + strlen (PPN_TOKEN_PREFIX)) != NULL)
		g_test_fail_printf ("expected the tenants file without the token, got it in:\n%s", data);
	g_assert_nonnull (strstr (data, "# bob pays in advance"));
	g_assert_nonnull (strstr (data, "# ppn tenants"));
	g_assert_true (g_key_file_load_from_data (kf, data, -1, G_KEY_FILE_NONE, &error));
	stored = g_key_file_get_string (kf, "tenant alice", "token-hash", &error);
	g_assert_no_error (error);
	hash = ppn_token_hash (out);
	g_assert_cmpstr (stored, ==, hash);
	g_assert_true (ppn_token_hash_parse (stored, digest, &error));
	g_assert_cmpint (g_key_file_get_integer (kf, "tenant alice", "max-vms", &error), ==, 3);
	g_assert_cmpint (g_key_file_get_integer (kf, "tenant bob", "max-vms", &error), ==, 2);
	g_assert_no_error (error);

	/* twice: refused, the file untouched */
	before = g_steal_pointer (&data);
	assert_exit (run_ppnctl (NULL, NULL, &err2, "tenant", "add", "alice", "--tenants-file", path, NULL), 6,
		     "tenant add twice", err2);
	g_assert_nonnull (strstr (err2, "already exists"));
	g_assert_true (g_file_get_contents (path, &after, NULL, &error));
	g_assert_cmpstr (before, ==, after);

	/* --json, and the default max-vms */
	assert_exit (run_ppnctl (NULL, &out3, NULL, "--json", "tenant", "add", "carol", "--tenants-file", path, NULL),
		     0, "tenant add --json", NULL);
	json = json_from_string (out3, &error);
	g_assert_no_error (error);
	g_assert_cmpstr (json_object_get_string_member (json_node_get_object (json), "tenant"), ==, "carol");
	token3 = json_object_get_string_member (json_node_get_object (json), "token");
	g_assert_true (g_str_has_prefix (token3, PPN_TOKEN_PREFIX));
	g_assert_cmpstr (token3, !=, out);
	g_key_file_unref (kf);
	kf = g_key_file_new ();
	g_assert_true (g_key_file_load_from_file (kf, path, G_KEY_FILE_NONE, &error));
	g_assert_cmpint (g_key_file_get_integer (kf, "tenant carol", "max-vms", &error), ==, 4);
	g_assert_true (g_key_file_has_group (kf, "tenant alice"));
	g_free (hash);
	hash = ppn_token_hash (token3);
	g_free (stored);
	stored = g_key_file_get_string (kf, "tenant carol", "token-hash", &error);
	g_assert_cmpstr (stored, ==, hash);
}

static void
test_tenant_add_new_file (void)
{
	g_autofree gchar *path = g_build_filename (t.dir, "new-tenants.conf", NULL);
	g_autofree gchar *out = NULL;

	assert_exit (run_ppnctl (NULL, &out, NULL, "tenant", "add", "t1", "--tenants-file", path, NULL), 0,
		     "tenant add to a new file", NULL);
	g_assert_cmphex (file_mode (path), ==, 0600);
}

/* ---- against a server -------------------------------------------------- */

static void
test_closed_port (void)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(GSocket) sock = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP,
						&error);
	g_autoptr(GInetAddress) lo = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
	g_autoptr(GSocketAddress) addr = g_inet_socket_address_new (lo, 0);
	g_autoptr(GSocketAddress) bound = NULL;
	g_autofree gchar *url = NULL;
	g_autofree gchar *err = NULL;
	const gchar *env[] = {NULL, "PPN_TOKEN=" TEST_TOKEN, NULL};
	g_autofree gchar *ca_env = g_strconcat ("PPN_CA=", t.ca_pem, NULL);

	env[0] = ca_env;
	g_assert_true (g_socket_bind (sock, addr, FALSE, &error));
	bound = g_socket_get_local_address (sock, &error);
	url = g_strdup_printf ("https://127.0.0.1:%u",
			       g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound)));
	g_socket_close (sock, NULL);
	assert_exit (run_ppnctl (env, NULL, &err, "vm", "list", "--url", url, NULL), 1, "vm list, closed port", err);
	if (!g_str_has_prefix (err, "ppnctl: Cannot reach https://127.0.0.1:") || strstr (err, "refused") == NULL)
		g_test_fail_printf ("expected 'ppnctl: Cannot reach URL: ...refused', got '%s'", err);
	g_assert_null (strstr (err, "CANARY"));
}

static void
test_foreign_ca (void)
{
	g_autofree gchar *other = g_build_filename (t.dir, "foreign-ca", NULL);
	g_autofree gchar *other_pem = g_build_filename (other, "ca.pem", NULL);
	g_autofree gchar *err = NULL;
	g_autoptr(GError) error = NULL;

	g_assert_true (ppn_tls_ca_create (other, "foreign", 2, &error));
	g_ptr_array_set_size (t.requests, 0);
	assert_exit (run_ppnctl (server_env (), NULL, &err, "vm", "list", "--ca", other_pem, NULL), 1,
		     "vm list, server not from the CA", err);
	g_test_message ("foreign CA: %s", err);
	g_assert_cmpuint (t.requests->len, ==, 0);
	g_assert_nonnull (strstr (err, "Cannot reach"));
}

static void
test_exit_codes (void)
{
	static const struct {
		const gchar *id;
		int status;
	} cases[] = {
		{"0000000000000400", 6}, {"0000000000000401", 4}, {"0000000000000403", 5}, {"0000000000000430", 5},
		{"0000000000000404", 3}, {"0000000000000409", 6}, {"0000000000000413", 6}, {"0000000000000415", 6},
		{"0000000000000429", 1}, {"0000000000000500", 1}, {"0000000000000503", 7}, {"0000000000000530", 7},
		{"ffffffffffffffff", 3},
		/* odd error bodies: no crash, no critical, a sensible code */
		{"00000000000000b1", 1}, {"00000000000000b2", 3}, {"00000000000000b3", 1},
		/* a redirect is not followed, the token stays here */
		{"0000000000000302", 1},
	};

	for (guint i = 0; i < G_N_ELEMENTS (cases); i++) {
		g_autofree gchar *err = NULL;
		g_autofree gchar *what = g_strdup_printf ("vm show %s", cases[i].id);

		g_ptr_array_set_size (t.requests, 0);
		assert_exit (run_ppnctl (server_env (), NULL, &err, "vm", "show", cases[i].id, NULL), cases[i].status,
			     what, err);
		if (!g_str_has_prefix (err, "ppnctl: "))
			g_test_fail_printf ("%s: expected 'ppnctl: <message>', got '%s'", what, err);
		if (strstr (err, "CRITICAL") != NULL || strstr (err, "WARNING") != NULL)
			g_test_fail_printf ("%s: expected no GLib warning, got '%s'", what, err);
		g_assert_cmpuint (t.requests->len, ==, 1);
	}
	{
		/* the message the server sent reaches the user */
		g_autofree gchar *err = NULL;
		run_ppnctl (server_env (), NULL, &err, "vm", "show", "0000000000000404", NULL);
		g_assert_cmpstr (err, ==, "ppnctl: canned 0000000000000404\n");
	}
	{
		/* unauthorized with a wrong token; the token is not printed */
		const gchar *env[] = {server_env ()[0], server_env ()[1], "PPN_TOKEN=ppn_wrongCANARY", NULL};
		g_autofree gchar *err = NULL;
		g_autofree gchar *out = NULL;
		assert_exit (run_ppnctl (env, &out, &err, "vm", "list", NULL), 4, "vm list, wrong token", err);
		g_assert_null (strstr (err, "CANARY"));
		g_assert_null (strstr (out, "CANARY"));
		g_assert_cmpstr (t.last_authorization, ==, "Bearer ppn_wrongCANARY");
	}
	{
		/* create: 403 quota and 503 capacity through POST */
		g_autofree gchar *err = NULL;
		g_autofree gchar *err2 = NULL;
		assert_exit (run_ppnctl (server_env (), NULL, &err, "vm", "create", "over", "--image", "test-guest",
					 NULL),
			     5, "vm create, quota", err);
		g_assert_cmpstr (err, ==, "ppnctl: Tenant has 4 of 4 VMs\n");
		assert_exit (run_ppnctl (server_env (), NULL, &err2, "vm", "create", "full", "--image", "test-guest",
					 NULL),
			     7, "vm create, no capacity", err2);
	}
}

static void
test_token_never_printed (void)
{
	g_autofree gchar *path = g_build_filename (t.dir, "token", NULL);
	g_autofree gchar *err = NULL;
	g_autofree gchar *out = NULL;
	g_autofree gchar *err2 = NULL;
	g_autoptr(GError) error = NULL;
	const gchar *env[] = {server_env ()[0], server_env ()[1], NULL};

	/* a server that echoes the token in its message; from a token file */
	g_assert_true (g_file_set_contents_full (path, TEST_TOKEN "\n", -1, G_FILE_SET_CONTENTS_NONE, 0600, &error));
	assert_exit (run_ppnctl (env, &out, &err, "vm", "show", "00000000000000ee", "--token-file", path, NULL), 3,
		     "vm show, echoing server", err);
	g_test_message ("echoing server: %s", err);
	g_assert_cmpstr (t.last_authorization, ==, "Bearer " TEST_TOKEN);
	if (strstr (err, "CANARY") != NULL || strstr (out, "CANARY") != NULL)
		g_test_fail_printf ("expected no token in the output, got '%s'", err);
	g_assert_nonnull (strstr (err, "[token]"));
	/* nor a terminal escape */
	g_assert_null (strchr (err, '\033'));

	/* a token with a line break inside is refused before sending */
	g_assert_true (g_file_set_contents_full (path, "ppn_CANARY\nX-Evil: 1\n", -1, G_FILE_SET_CONTENTS_NONE, 0600,
						 &error));
	g_ptr_array_set_size (t.requests, 0);
	assert_exit (run_ppnctl (env, NULL, &err2, "vm", "list", "--token-file", path, NULL), 2,
		     "vm list, two-line token", err2);
	g_assert_null (strstr (err2, "CANARY"));
	g_assert_cmpuint (t.requests->len, ==, 0);
}

static void
test_vm_list_table (void)
{
	g_autofree gchar *out = NULL;
	g_autofree gchar *err = NULL;
	g_auto(GStrv) lines = NULL;
	gsize col_name, col_forwards;

	g_ptr_array_set_size (t.requests, 0);
	assert_exit (run_ppnctl (server_env (), &out, &err, "vm", "list", NULL), 0, "vm list", err);
	g_test_message ("vm list:\n%s", out);
	/* both pages, the token escaped in the query */
	g_assert_cmpuint (t.requests->len, ==, 2);
	g_assert_cmpstr (g_ptr_array_index (t.requests, 0), ==, "GET /v1/vms");
	g_assert_cmpstr (g_ptr_array_index (t.requests, 1), ==, "GET /v1/vms?page_token=page%202%2F%26x");
	lines = g_strsplit (out, "\n", -1);
	g_assert_cmpuint (g_strv_length (lines), ==, 5); /* header, 3 VMs, "" */
	g_assert_true (g_str_has_prefix (lines[0], "ID  "));
	g_assert_true (g_str_has_suffix (lines[0], "CREATED"));
	col_name = strstr (lines[0], "NAME") - lines[0];
	col_forwards = strstr (lines[0], "FORWARDS") - lines[0];
	for (guint i = 1; i <= 3; i++) {
		/* aligned columns */
		g_assert_cmpint (lines[i][col_name - 1], ==, ' ');
		g_assert_cmpint (lines[i][col_name], !=, ' ');
		g_assert_cmpint (lines[i][col_forwards], !=, ' ');
	}
	g_assert_true (g_str_has_prefix (lines[1], VM1_ID "  web1 "));
	g_assert_nonnull (strstr (lines[1], " running "));
	g_assert_nonnull (strstr (lines[1], " 256MiB "));
	g_assert_nonnull (strstr (lines[1], " 127.0.0.1:20000->80/tcp,127.0.0.1:20001->53/udp "));
	g_assert_true (g_str_has_suffix (lines[1], "2026-12-03T15:00:00Z"));
	g_assert_nonnull (strstr (lines[2], " pending "));
	g_assert_nonnull (strstr (lines[2], " 16384MiB "));
	g_assert_nonnull (strstr (lines[2], " - "));
	g_assert_nonnull (strstr (lines[3], " [::1]:20002->22/tcp "));
	/* the hostile name arrives without its escape */
	g_assert_null (strchr (out, '\033'));
	g_assert_nonnull (strstr (lines[3], "x?[2Jclear"));
}

static void
test_vm_list_limit (void)
{
	g_autofree gchar *out = NULL;
	g_autofree gchar *err = NULL;
	g_auto(GStrv) lines = NULL;

	g_ptr_array_set_size (t.requests, 0);
	assert_exit (run_ppnctl (server_env (), &out, &err, "vm", "list", "--limit", "2", NULL), 0, "vm list --limit",
		     err);
	g_assert_cmpuint (t.requests->len, ==, 1);
	g_assert_cmpstr (g_ptr_array_index (t.requests, 0), ==, "GET /v1/vms?limit=2");
	lines = g_strsplit (out, "\n", -1);
	g_assert_cmpuint (g_strv_length (lines), ==, 4);
}

static void
test_json_output (void)
{
	g_autofree gchar *out = NULL;
	g_autofree gchar *out2 = NULL;
	g_autofree gchar *out3 = NULL;
	g_autofree gchar *out4 = NULL;
	g_autoptr(GError) error = NULL;
	g_autoptr(JsonNode) list = NULL;
	g_autoptr(JsonNode) vm = NULL;
	g_autoptr(JsonNode) limited = NULL;
	JsonArray *vms;

	assert_exit (run_ppnctl (server_env (), &out, NULL, "--json", "vm", "list", NULL), 0, "--json vm list", NULL);
	list = json_from_string (out, &error);
	g_assert_no_error (error);
	vms = json_object_get_array_member (json_node_get_object (list), "vms");
	g_assert_cmpuint (json_array_get_length (vms), ==, 3);
	g_assert_cmpstr (json_object_get_string_member (json_array_get_object_element (vms, 2), "id"), ==,
			 "2222222222222222");
	g_assert_false (json_object_has_member (json_node_get_object (list), "next_page_token"));
	/* pretty: one member a line */
	g_assert_nonnull (strstr (out, "\n  \"vms\" : ["));

	/* the option after the command works as well */
	assert_exit (run_ppnctl (server_env (), &out2, NULL, "vm", "show", VM1_ID, "--json", NULL), 0,
		     "vm show --json", NULL);
	vm = json_from_string (out2, &error);
	g_assert_no_error (error);
	g_assert_cmpstr (json_object_get_string_member (json_node_get_object (vm), "id"), ==, VM1_ID);
	g_assert_cmpint (json_object_get_int_member (json_node_get_object (vm), "memory_mib"), ==, 256);

	assert_exit (run_ppnctl (server_env (), &out3, NULL, "--json", "vm", "list", "--limit", "2", NULL), 0,
		     "--json vm list --limit", NULL);
	limited = json_from_string (out3, &error);
	g_assert_no_error (error);
	g_assert_cmpstr (json_object_get_string_member (json_node_get_object (limited), "next_page_token"), ==,
			 "page 2/&x");

	assert_exit (run_ppnctl (server_env (), &out4, NULL, "--json", "quota", NULL), 0, "--json quota", NULL);
	g_assert_nonnull (strstr (out4, "\"max_vms\" : 4"));
}

static void
test_vm_show_delete (void)
{
	g_autofree gchar *out = NULL;
	g_autofree gchar *out2 = NULL;
	g_autofree gchar *out3 = NULL;
	g_autofree gchar *out4 = NULL;

	assert_exit (run_ppnctl (server_env (), &out, NULL, "vm", "show", VM1_ID, NULL), 0, "vm show", NULL);
	g_test_message ("vm show:\n%s", out);
	g_assert_true (g_str_has_prefix (out, "ID:       " VM1_ID "\n"));
	g_assert_nonnull (strstr (out, "\nName:     web1\n"));
	g_assert_nonnull (strstr (out, "\nMemory:   256MiB\n"));
	g_assert_nonnull (strstr (out, "\nForwards: 127.0.0.1:20000->80/tcp\n          127.0.0.1:20001->53/udp\n"));

	g_ptr_array_set_size (t.requests, 0);
	assert_exit (run_ppnctl (server_env (), &out2, NULL, "vm", "delete", VM1_ID, NULL), 0, "vm delete", NULL);
	g_assert_cmpstr (g_ptr_array_index (t.requests, 0), ==, "DELETE /v1/vms/" VM1_ID);
	g_assert_nonnull (strstr (out2, VM1_ID));

	assert_exit (run_ppnctl (server_env (), &out3, NULL, "quota", NULL), 0, "quota", NULL);
	g_assert_cmpstr (out3, ==, "Max VMs: 4\nUsed:    1\n");
	assert_exit (run_ppnctl (server_env (), &out4, NULL, "images", NULL), 0, "images", NULL);
	g_assert_cmpstr (out4, ==, "NAME        DESCRIPTION\ntest-guest  Tiny busybox guest\n");
}

static void
test_vm_create (void)
{
	g_autofree gchar *out = NULL;
	g_autofree gchar *err = NULL;
	g_autofree gchar *out2 = NULL;

	assert_exit (run_ppnctl (server_env (), &out, &err, "vm", "create", "web2", "--image", "test-guest", "--vcpus",
				 "2", "--memory", "512", "--forward", "80", "--forward", "53/udp", NULL),
		     0, "vm create", err);
	g_assert_cmpstr (t.last_body, ==,
			 "{\"name\":\"web2\",\"image\":\"test-guest\",\"vcpus\":2,\"memory_mib\":512,"
			 "\"port_forwards\":[{\"guest_port\":80,\"proto\":\"tcp\"},{\"guest_port\":53,\"proto\":\"udp\"}]}");
	g_assert_nonnull (strstr (out, "\nName:     web2\n"));
	g_assert_nonnull (strstr (out, "127.0.0.1:20000->80/tcp"));

	/* defaults are the server's: nothing sent for them */
	assert_exit (run_ppnctl (server_env (), &out2, NULL, "vm", "create", "web3", "--image", "test-guest", NULL), 0,
		     "vm create with defaults", NULL);
	g_assert_cmpstr (t.last_body, ==, "{\"name\":\"web3\",\"image\":\"test-guest\"}");
}

static void
rm_rf (const gchar *path)
{
	g_autoptr(GDir) dir = g_dir_open (path, 0, NULL);
	const gchar *name;

	while (dir != NULL && (name = g_dir_read_name (dir)) != NULL) {
		g_autofree gchar *child = g_build_filename (path, name, NULL);
		if (g_file_test (child, G_FILE_TEST_IS_DIR) && !g_file_test (child, G_FILE_TEST_IS_SYMLINK))
			rm_rf (child);
		else
			g_unlink (child);
	}
	g_rmdir (path);
}

int
main (int argc, char **argv)
{
	g_autoptr(GError) error = NULL;
	const gchar *builddir = g_getenv ("PPN_BUILDDIR");
	int ret;

	g_test_init (&argc, &argv, NULL);
	if (builddir != NULL)
		t.ppnctl = g_build_filename (builddir, "ppnctl", NULL);
	else
		t.ppnctl = g_test_build_filename (G_TEST_BUILT, "..", "ppnctl", NULL);
	t.dir = g_dir_make_tmp ("test-ppnctl-XXXXXX", &error);
	g_assert_no_error (error);
	if (!g_file_test (t.ppnctl, G_FILE_TEST_IS_EXECUTABLE)) {
		g_printerr ("ppnctl not found at %s (set PPN_BUILDDIR)\n", t.ppnctl);
		return 1;
	}
	server_start ();

	g_test_add_func ("/ppnctl/usage-errors", test_usage_errors);
	g_test_add_func ("/ppnctl/help", test_help);
	g_test_add_func ("/ppnctl/pki", test_pki);
	g_test_add_func ("/ppnctl/cert-default-sans", test_cert_default_sans);
	g_test_add_func ("/ppnctl/tenant-add", test_tenant_add);
	g_test_add_func ("/ppnctl/tenant-add-new-file", test_tenant_add_new_file);
	g_test_add_func ("/ppnctl/closed-port", test_closed_port);
	g_test_add_func ("/ppnctl/foreign-ca", test_foreign_ca);
	g_test_add_func ("/ppnctl/exit-codes", test_exit_codes);
	g_test_add_func ("/ppnctl/token-never-printed", test_token_never_printed);
	g_test_add_func ("/ppnctl/vm-list-table", test_vm_list_table);
	g_test_add_func ("/ppnctl/vm-list-limit", test_vm_list_limit);
	g_test_add_func ("/ppnctl/json-output", test_json_output);
	g_test_add_func ("/ppnctl/vm-show-delete", test_vm_show_delete);
	g_test_add_func ("/ppnctl/vm-create", test_vm_create);
	ret = g_test_run ();

	g_clear_object (&t.server);
	rm_rf (t.dir);
	return ret;
}
