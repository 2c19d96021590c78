#include "config.h"

#define G_LOG_DOMAIN "ppn-test"

#include <glib/gstdio.h>
#include <libsoup/soup.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "ppn-agent-cleanup.h"
#include "ppn-agent-server.h"
#include "ppn-domain-manager.h"
#include "ppn-error.h"
#include "ppn-heartbeat.h"
#include "ppn-http.h"
#include "ppn-json.h"
#include "ppn-tls.h"

typedef struct {
	gchar *dir;
	PpnAgentConfig *config;
	PpnImageCatalog *catalog;
	PpnDomainManager *manager;
	PpnAgentServer *server;
	GTlsDatabase *ca;
	GTlsCertificate *fleet;
	GTlsCertificate *agent;
	GTlsCertificate *operator;
	GTlsCertificate *foreign;
	SoupSession *session;
	virConnect *keeper;
	GMainLoop *loop;
	GAsyncResult *res;
	guint16 port;
} Fixture;

static void
test_virt_error_func (void *user_data, virErrorPtr err)
{
}

static void
async_cb (GObject *source, GAsyncResult *res, gpointer user_data)
{
	Fixture *fx = user_data;

	fx->res = g_object_ref (res);
	g_main_loop_quit (fx->loop);
}

static GTlsCertificate *
issue (Fixture *fx, const gchar *ca_dir, PpnTlsRole role, const gchar *name)
{
	const gchar *sans[] = {"127.0.0.1", NULL};
	g_autofree gchar *base = g_strdup_printf ("%s-%s", ppn_tls_role_to_string (role), name);
	g_autofree gchar *cert = g_strdup_printf ("%s/%s.pem", fx->dir, base);
	g_autofree gchar *key = g_strdup_printf ("%s/%s-key.pem", fx->dir, base);
	g_autoptr(GError) error = NULL;
	GTlsCertificate *c;

	g_assert_true (ppn_tls_issue (ca_dir, role, name, sans, 1, cert, key, &error));
	g_assert_no_error (error);
	c = ppn_tls_load_certificate (cert, key, &error);
	g_assert_no_error (error);
	return c;
}

static guint16
free_base (void)
{
	guint16 base = (guint16)g_random_int_range (30000, 60000);
	return base;
}

static void
fixture_setup (Fixture *fx, gconstpointer data)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(GKeyFile) kf = g_key_file_new ();
	g_autofree gchar *conf = NULL;
	g_autofree gchar *ca_dir = NULL;
	g_autofree gchar *foreign_dir = NULL;
	g_autofree gchar *ca_path = NULL;
	g_autofree gchar *image_dir = NULL;
	g_autoptr(GTlsCertificate) server_cert = NULL;
	guint16 base = free_base ();

	fx->dir = g_dir_make_tmp ("ppn-server-XXXXXX", &error);
	g_assert_no_error (error);
	ca_dir = g_build_filename (fx->dir, "ca", NULL);
	foreign_dir = g_build_filename (fx->dir, "foreign", NULL);
	g_assert_true (ppn_tls_ca_create (ca_dir, "ppn test CA", 1, &error));
	g_assert_true (ppn_tls_ca_create (foreign_dir, "someone else's CA", 1, &error));
	g_assert_no_error (error);
	ca_path = g_build_filename (ca_dir, "ca.pem", NULL);
	fx->ca = ppn_tls_load_ca (ca_path, &error);
	g_assert_no_error (error);
	server_cert = issue (fx, ca_dir, PPN_TLS_ROLE_AGENT, "node1");
	fx->fleet = issue (fx, ca_dir, PPN_TLS_ROLE_FLEET, "fleet");
	fx->agent = issue (fx, ca_dir, PPN_TLS_ROLE_AGENT, "node2");
	fx->operator = issue (fx, ca_dir, PPN_TLS_ROLE_OPERATOR, "ops");
	fx->foreign = issue (fx, foreign_dir, PPN_TLS_ROLE_FLEET, "fleet");

	image_dir = g_build_filename (fx->dir, "images", "test-guest", NULL);
	g_assert_cmpint (g_mkdir_with_parents (image_dir, 0755), ==, 0);
	{
		g_autofree gchar *k = g_build_filename (image_dir, "vmlinuz", NULL);
		g_autofree gchar *c = g_build_filename (image_dir, "image.conf", NULL);
		g_assert_true (g_file_set_contents (k, "kernel", -1, NULL));
		g_assert_true (g_file_set_contents (c, "[image]\nname=test-guest\ndescription=t\nkernel=vmlinuz\n", -1,
						    NULL));
	}

	/* @data: more [agent] keys */
	conf = g_strdup_printf ("[agent]\nnode-id=node1\nfleet-url=https://127.0.0.1:9443\nlisten=127.0.0.1:0\n"
				"libvirt-uri=test:///default\nstate-dir=%s/state\nimage-dir=%s/images\n"
				"port-range=%u-%u\naccel=tcg\nmax-forwards=2\ncapacity-vcpus=4\ncapacity-memory-mib=1024\n%s",
				fx->dir, fx->dir, base, base + 9, data != NULL ? (const gchar *)data : "");
	g_assert_true (g_key_file_load_from_data (kf, conf, -1, G_KEY_FILE_NONE, NULL));
	fx->config = ppn_agent_config_new_from_keyfile (kf, NULL, &error);
	g_assert_no_error (error);

	virSetErrorFunc (NULL, test_virt_error_func);
	fx->keeper = virConnectOpen ("test:///default");
	fx->loop = g_main_loop_new (NULL, FALSE);
	fx->catalog = ppn_image_catalog_new (fx->config->image_dir);
	ppn_image_catalog_rescan (fx->catalog);
	fx->manager = ppn_domain_manager_new (fx->config, &error);
	g_assert_no_error (error);
	ppn_domain_manager_start_async (fx->manager, NULL, async_cb, fx);
	g_main_loop_run (fx->loop);
	g_assert_true (ppn_domain_manager_start_finish (fx->manager, fx->res, &error));
	g_clear_object (&fx->res);

	fx->server = ppn_agent_server_new (fx->config, fx->manager, fx->catalog, server_cert, fx->ca, &error);
	g_assert_no_error (error);
	g_assert_true (ppn_agent_server_listen (fx->server, fx->config->listen, &fx->port, &error));
	g_assert_no_error (error);
	g_assert_cmpuint (fx->port, >, 0);
	fx->session = ppn_http_session_new (fx->ca, 10);
}

static void
fixture_teardown (Fixture *fx, gconstpointer data)
{
	g_autofree gchar *cmd = g_strdup_printf ("rm -rf '%s'", fx->dir);
	virDomainPtr *doms = NULL;
	int n = virConnectListAllDomains (fx->keeper, &doms, 0);

	for (int i = 0; i < n; i++) {
		const gchar *name = virDomainGetName (doms[i]);
		if (g_str_has_prefix (name, "ppn-")) {
			virDomainDestroy (doms[i]);
			g_error ("test left domain %s", name);
		}
		virDomainFree (doms[i]);
	}
	free (doms);
	/* close the kept-alive connections, and let both ends notice */
	soup_session_abort (fx->session);
	g_clear_object (&fx->session);
	ppn_agent_server_disconnect (fx->server);
	for (guint i = 0; i < 100 && g_main_context_iteration (NULL, FALSE); i++)
		;
	g_clear_object (&fx->server);
	g_clear_object (&fx->manager);
	ppn_image_catalog_free (fx->catalog);
	ppn_agent_config_free (fx->config);
	g_clear_object (&fx->ca);
	g_clear_object (&fx->fleet);
	g_clear_object (&fx->agent);
	g_clear_object (&fx->operator);
	g_clear_object (&fx->foreign);
	virConnectClose (fx->keeper);
	g_main_loop_unref (fx->loop);
	g_assert_cmpint (system (cmd), ==, 0);
	g_free (fx->dir);
}

/* one request; returns the status (0: no HTTP answer) and the parsed body */
static guint
request (Fixture *fx,
	 const gchar *method,
	 const gchar *path,
	 const gchar *body,
	 GTlsCertificate *cert,
	 JsonNode **out,
	 GError **error)
{
	g_autofree gchar *url = g_strdup_printf ("https://127.0.0.1:%u%s", fx->port, path);
	g_autoptr(SoupMessage) msg = soup_message_new (method, url);
	g_autoptr(GBytes) answer = NULL;
	g_autoptr(JsonParser) parser = json_parser_new ();

	if (body != NULL) {
		g_autoptr(GBytes) bytes = g_bytes_new (body, strlen (body));
		soup_message_set_request_body_from_bytes (msg, "application/json", bytes);
	}
	if (cert != NULL)
		soup_message_set_tls_client_certificate (msg, cert);
	soup_session_send_and_read_async (fx->session, msg, G_PRIORITY_DEFAULT, NULL, async_cb, fx);
	g_main_loop_run (fx->loop);
	answer = soup_session_send_and_read_finish (fx->session, fx->res, error);
	g_clear_object (&fx->res);
	if (answer == NULL)
		return soup_message_get_status (msg);
	if (out != NULL) {
		*out = NULL;
		if (g_bytes_get_size (answer) > 0 &&
		    json_parser_load_from_data (parser, g_bytes_get_data (answer, NULL), (gssize)g_bytes_get_size (answer),
						NULL))
			*out = json_node_ref (json_parser_get_root (parser));
	}
	return soup_message_get_status (msg);
}

static const gchar *
error_code (JsonNode *node)
{
	JsonObject *err;

	g_assert_nonnull (node);
	err = json_object_get_object_member (json_node_get_object (node), "error");
	g_assert_nonnull (err);
	return json_object_get_string_member (err, "code");
}

static const gchar *
error_message (JsonNode *node)
{
	return json_object_get_string_member (json_object_get_object_member (json_node_get_object (node), "error"),
					      "message");
}

#define CREATE_BODY(id) \
	"{\"vm_id\": \"" id "\", \"tenant\": \"alice\", \"name\": \"web1\", \"image\": \"test-guest\", " \
	"\"vcpus\": 1, \"memory_mib\": 256, \"port_forwards\": [{\"guest_port\": 80, \"proto\": \"tcp\"}]}"

static void
test_fleet_lifecycle (Fixture *fx, gconstpointer data)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(JsonNode) created = NULL;
	g_autoptr(JsonNode) listed = NULL;
	g_autoptr(JsonNode) gone = NULL;
	g_autoptr(JsonNode) listed2 = NULL;
	JsonObject *obj;
	JsonObject *fwd;
	JsonArray *domains;
	gint64 host_port;

	g_assert_cmpuint (request (fx, "POST", "/agent/v1/domains", CREATE_BODY ("1111111111111111"), fx->fleet,
				   &created, &error), ==, 201);
	g_assert_no_error (error);
	obj = json_node_get_object (created);
	g_assert_cmpstr (json_object_get_string_member (obj, "vm_id"), ==, "1111111111111111");
	g_assert_cmpstr (json_object_get_string_member (obj, "domain"), ==, "ppn-1111111111111111");
	g_assert_cmpstr (json_object_get_string_member (obj, "state"), ==, "running");
	g_assert_cmpstr (json_object_get_string_member (obj, "accel"), ==, "tcg");
	g_assert_cmpstr (json_object_get_string_member (obj, "egress"), ==, "nat");
	fwd = json_array_get_object_element (json_object_get_array_member (obj, "port_forwards"), 0);
	g_assert_cmpint (json_object_get_int_member (fwd, "guest_port"), ==, 80);
	g_assert_cmpstr (json_object_get_string_member (fwd, "proto"), ==, "tcp");
	g_assert_cmpstr (json_object_get_string_member (fwd, "host_address"), ==, "127.0.0.1");
	host_port = json_object_get_int_member (fwd, "host_port");
	g_assert_cmpint (host_port, >=, fx->config->port_first);
	g_assert_cmpint (host_port, <=, fx->config->port_last);

	g_assert_cmpuint (request (fx, "GET", "/agent/v1/domains", NULL, fx->fleet, &listed, &error), ==, 200);
	domains = json_object_get_array_member (json_node_get_object (listed), "domains");
	g_assert_cmpuint (json_array_get_length (domains), ==, 1);
	obj = json_array_get_object_element (domains, 0);
	g_assert_cmpstr (json_object_get_string_member (obj, "vm_id"), ==, "1111111111111111");
	g_assert_cmpstr (json_object_get_string_member (obj, "tenant"), ==, "alice");
	g_assert_cmpstr (json_object_get_string_member (obj, "state"), ==, "running");
	g_assert_cmpstr (json_object_get_string_member (obj, "egress"), ==, "nat");
	/* what the fleet needs to adopt a domain it has no record of */
	g_assert_cmpstr (json_object_get_string_member (obj, "name"), ==, "web1");
	g_assert_cmpstr (json_object_get_string_member (obj, "image"), ==, "test-guest");
	g_assert_cmpint (json_object_get_int_member (obj, "vcpus"), ==, 1);
	g_assert_cmpint (json_object_get_int_member (obj, "memory_mib"), ==, 256);
	fwd = json_array_get_object_element (json_object_get_array_member (obj, "port_forwards"), 0);
	g_assert_cmpint (json_object_get_int_member (fwd, "host_port"), ==, host_port);

	g_assert_cmpuint (request (fx, "DELETE", "/agent/v1/domains/1111111111111111", NULL, fx->fleet, NULL, &error),
			  ==, 204);
	g_assert_cmpuint (request (fx, "DELETE", "/agent/v1/domains/1111111111111111", NULL, fx->fleet, &gone, &error),
			  ==, 404);
	g_assert_cmpstr (error_code (gone), ==, "not_found");
	g_assert_cmpuint (request (fx, "GET", "/agent/v1/domains", NULL, fx->fleet, &listed2, &error), ==, 200);
	domains = json_object_get_array_member (json_node_get_object (listed2), "domains");
	g_assert_cmpuint (json_array_get_length (domains), ==, 0);
}

static void
test_conflict (Fixture *fx, gconstpointer data)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(JsonNode) again = NULL;

	g_assert_cmpuint (request (fx, "POST", "/agent/v1/domains", CREATE_BODY ("2222222222222222"), fx->fleet,
				   NULL, &error), ==, 201);
	g_assert_cmpuint (request (fx, "POST", "/agent/v1/domains", CREATE_BODY ("2222222222222222"), fx->fleet,
				   &again, &error), ==, 409);
	g_assert_cmpstr (error_code (again), ==, "conflict");
	g_assert_cmpuint (request (fx, "DELETE", "/agent/v1/domains/2222222222222222", NULL, fx->fleet, NULL, &error),
			  ==, 204);
}

/* no certificate, or one from another CA: no TLS session, no HTTP status */
static void
test_handshake_refused (Fixture *fx, gconstpointer data)
{
	GTlsCertificate *certs[] = {NULL, fx->foreign};

	for (guint i = 0; i < G_N_ELEMENTS (certs); i++) {
		g_autoptr(GError) error = NULL;
		guint status;

		/* libppn-common logs every refused certificate */
		if (certs[i] != NULL)
			g_test_expect_message ("ppn", G_LOG_LEVEL_MESSAGE, "refused a client certificate*");
		status = request (fx, "GET", "/agent/v1/domains", NULL, certs[i], NULL, &error);
		g_test_assert_expected_messages ();

		g_assert_nonnull (error);
		g_test_message ("%s: %s", certs[i] == NULL ? "no certificate" : "foreign CA", error->message);
		g_assert_cmpuint (status, ==, SOUP_STATUS_NONE);
	}
	/* and nothing was created meanwhile */
	{
		g_autoptr(GError) error = NULL;
		guint status;

		g_test_expect_message ("ppn", G_LOG_LEVEL_MESSAGE, "refused a client certificate*");
		status = request (fx, "POST", "/agent/v1/domains", CREATE_BODY ("3333333333333333"), fx->foreign,
				  NULL, &error);
		g_test_assert_expected_messages ();
		g_assert_nonnull (error);
		g_assert_cmpuint (status, ==, SOUP_STATUS_NONE);
	}
}

/* a certificate of the fleet CA, but not for the fleet: 403 */
static void
test_wrong_role (Fixture *fx, gconstpointer data)
{
	GTlsCertificate *certs[] = {fx->agent, fx->operator};
	struct {
		const gchar *method;
		const gchar *path;
		const gchar *body;
	} calls[] = {
		{"GET", "/agent/v1/domains", NULL},
		{"POST", "/agent/v1/domains", CREATE_BODY ("4444444444444444")},
		{"DELETE", "/agent/v1/domains/4444444444444444", NULL},
		{"GET", "/nowhere", NULL},
	};

	for (guint i = 0; i < G_N_ELEMENTS (certs); i++) {
		for (guint j = 0; j < G_N_ELEMENTS (calls); j++) {
			g_autoptr(GError) error = NULL;
			g_autoptr(JsonNode) answer = NULL;
			guint status = request (fx, calls[j].method, calls[j].path, calls[j].body, certs[i], &answer, &error);

			g_assert_no_error (error);
			g_assert_cmpuint (status, ==, 403);
			g_assert_cmpstr (error_code (answer), ==, "forbidden");
		}
	}
}

static void
test_bad_requests (Fixture *fx, gconstpointer data)
{
	g_autofree gchar *long_name = g_strnfill (10000, 'a');
	g_autofree gchar *long_body = g_strdup_printf ("{\"vm_id\": \"5555555555555555\", \"tenant\": \"alice\", "
						       "\"name\": \"%s\", \"image\": \"test-guest\"}", long_name);
	struct {
		const gchar *body;
		const gchar *field; /* the message must name it */
	} cases[] = {
		{"not json", NULL},
		{"[]", NULL},
		{"{\"vm_id\": \"5555555555555555\", \"tenant\": \"alice\", \"name\": \"w\", \"image\": \"test-guest\", \"extra\": 1}", "extra"},
		{"{\"tenant\": \"alice\", \"name\": \"w\", \"image\": \"test-guest\"}", "vm_id"},
		{"{\"vm_id\": \"5555555555555555x\", \"tenant\": \"alice\", \"name\": \"w\", \"image\": \"test-guest\"}", "vm_id"},
		{"{\"vm_id\": \"../../../etc/pass\", \"tenant\": \"alice\", \"name\": \"w\", \"image\": \"test-guest\"}", "vm_id"},
		{"{\"vm_id\": 5, \"tenant\": \"alice\", \"name\": \"w\", \"image\": \"test-guest\"}", "vm_id"},
		{"{\"vm_id\": \"5555555555555555\", \"name\": \"w\", \"image\": \"test-guest\"}", "tenant"},
		{"{\"vm_id\": \"5555555555555555\", \"tenant\": \"a&b\", \"name\": \"w\", \"image\": \"test-guest\"}", "tenant"},
		{"{\"vm_id\": \"5555555555555555\", \"tenant\": \"alice\", \"name\": \"a</name><devices><disk type='file'><source file='/etc/shadow'/></disk></devices><name>b\", \"image\": \"test-guest\"}", "name"},
		{"{\"vm_id\": \"5555555555555555\", \"tenant\": \"alice\", \"name\": \"a'b\", \"image\": \"test-guest\"}", "name"},
		{"{\"vm_id\": \"5555555555555555\", \"tenant\": \"alice\", \"name\": \"a\\\"b\", \"image\": \"test-guest\"}", "name"},
		{"{\"vm_id\": \"5555555555555555\", \"tenant\": \"alice\", \"name\": \"a\\u0000</name>\", \"image\": \"test-guest\"}", NULL},
		{"{\"vm_id\": \"5555555555555555\", \"tenant\": \"alice\", \"name\": \"caf\xc3\xa9\", \"image\": \"test-guest\"}", "name"},
		{long_body, "name"},
		{"{\"vm_id\": \"5555555555555555\", \"tenant\": \"alice\", \"name\": \"w\", \"name\": \"v\", \"image\": \"test-guest\"}", "name"},
		{"{\"vm_id\": \"5555555555555555\", \"tenant\": \"alice\", \"name\": \"w\", \"image\": \"nope\"}", "nope"},
		{"{\"vm_id\": \"5555555555555555\", \"tenant\": \"alice\", \"name\": \"w\", \"image\": \"../test-guest\"}", "image"},
		{"{\"vm_id\": \"5555555555555555\", \"tenant\": \"alice\", \"name\": \"w\", \"image\": \"test-guest\", \"vcpus\": \"1\"}", "vcpus"},
		{"{\"vm_id\": \"5555555555555555\", \"tenant\": \"alice\", \"name\": \"w\", \"image\": \"test-guest\", \"vcpus\": 0}", "vcpus"},
		{"{\"vm_id\": \"5555555555555555\", \"tenant\": \"alice\", \"name\": \"w\", \"image\": \"test-guest\", \"vcpus\": 5}", "vcpus"},
		{"{\"vm_id\": \"5555555555555555\", \"tenant\": \"alice\", \"name\": \"w\", \"image\": \"test-guest\", \"vcpus\": 1.5}", "vcpus"},
		{"{\"vm_id\": \"5555555555555555\", \"tenant\": \"alice\", \"name\": \"w\", \"image\": \"test-guest\", \"memory_mib\": 10}", "memory_mib"},
		{"{\"vm_id\": \"5555555555555555\", \"tenant\": \"alice\", \"name\": \"w\", \"image\": \"test-guest\", \"port_forwards\": {}}", "port_forwards"},
		{"{\"vm_id\": \"5555555555555555\", \"tenant\": \"alice\", \"name\": \"w\", \"image\": \"test-guest\", \"port_forwards\": [{\"guest_port\": 1}, {\"guest_port\": 2}, {\"guest_port\": 3}]}", "port_forwards"},
		{"{\"vm_id\": \"5555555555555555\", \"tenant\": \"alice\", \"name\": \"w\", \"image\": \"test-guest\", \"port_forwards\": [{\"guest_port\": 0}]}", "guest_port"},
		{"{\"vm_id\": \"5555555555555555\", \"tenant\": \"alice\", \"name\": \"w\", \"image\": \"test-guest\", \"port_forwards\": [{\"guest_port\": 65536}]}", "guest_port"},
		{"{\"vm_id\": \"5555555555555555\", \"tenant\": \"alice\", \"name\": \"w\", \"image\": \"test-guest\", \"port_forwards\": [{\"guest_port\": \"22\"}]}", "guest_port"},
		{"{\"vm_id\": \"5555555555555555\", \"tenant\": \"alice\", \"name\": \"w\", \"image\": \"test-guest\", \"port_forwards\": [{\"guest_port\": 22, \"proto\": \"sctp\"}]}", "proto"},
		{"{\"vm_id\": \"5555555555555555\", \"tenant\": \"alice\", \"name\": \"w\", \"image\": \"test-guest\", \"port_forwards\": [{\"guest_port\": 22, \"host_port\": 22}]}", "host_port"},
		/* egress: one of two words, nothing else */
		{"{\"vm_id\": \"5555555555555555\", \"tenant\": \"alice\", \"name\": \"w\", \"image\": \"test-guest\", \"egress\": \"NONE\"}", "egress"},
		{"{\"vm_id\": \"5555555555555555\", \"tenant\": \"alice\", \"name\": \"w\", \"image\": \"test-guest\", \"egress\": \"\"}", "egress"},
		{"{\"vm_id\": \"5555555555555555\", \"tenant\": \"alice\", \"name\": \"w\", \"image\": \"test-guest\", \"egress\": \"open\"}", "egress"},
		{"{\"vm_id\": \"5555555555555555\", \"tenant\": \"alice\", \"name\": \"w\", \"image\": \"test-guest\", \"egress\": \"nat,restrict=off\"}", "egress"},
		{"{\"vm_id\": \"5555555555555555\", \"tenant\": \"alice\", \"name\": \"w\", \"image\": \"test-guest\", \"egress\": null}", "egress"},
		{"{\"vm_id\": \"5555555555555555\", \"tenant\": \"alice\", \"name\": \"w\", \"image\": \"test-guest\", \"egress\": true}", "egress"},
		{"{\"vm_id\": \"5555555555555555\", \"tenant\": \"alice\", \"name\": \"w\", \"image\": \"test-guest\", \"egress\": 0}", "egress"},
		{"{\"vm_id\": \"5555555555555555\", \"tenant\": \"alice\", \"name\": \"w\", \"image\": \"test-guest\", \"egress\": [\"none\"]}", "egress"},
		{"{\"vm_id\": \"5555555555555555\", \"tenant\": \"alice\", \"name\": \"w\", \"image\": \"test-guest\", \"egress\": \"none\", \"egress\": \"nat\"}", "egress"},
		{"{\"vm_id\": \"5555555555555555\", \"tenant\": \"alice\", \"name\": \"w\", \"image\": \"test-guest\", \"Egress\": \"none\"}", "Egress"},
	};

	for (guint i = 0; i < G_N_ELEMENTS (cases); i++) {
		g_autoptr(GError) error = NULL;
		g_autoptr(JsonNode) answer = NULL;
		guint status = request (fx, "POST", "/agent/v1/domains", cases[i].body, fx->fleet, &answer, &error);

		g_assert_no_error (error);
		if (status != 400)
			g_error ("case %u: expected 400, got %u", i, status);
		g_assert_cmpstr (error_code (answer), ==, "invalid_request");
		g_test_message ("case %u: %s", i, error_message (answer));
		if (cases[i].field != NULL && strstr (error_message (answer), cases[i].field) == NULL)
			g_error ("case %u: message '%s' does not name '%s'", i, error_message (answer), cases[i].field);
	}
}

#define EGRESS_BODY(id, egress) \
	"{\"vm_id\": \"" id "\", \"tenant\": \"alice\", \"name\": \"web1\", \"image\": \"test-guest\"" egress "}"

/* the effective policy is none when the node or the request says none;
 * it is in the answer, the list, the metadata and the netdev */
static void
test_egress (Fixture *fx, gconstpointer data)
{
	gboolean node_none = data != NULL;
	struct {
		const gchar *vm_id;
		const gchar *body;
		const gchar *expected;
	} cases[] = {
		{"7777777777777771", EGRESS_BODY ("7777777777777771", ""), node_none ? "none" : "nat"},
		{"7777777777777772", EGRESS_BODY ("7777777777777772", ", \"egress\": \"nat\""), node_none ? "none" : "nat"},
		{"7777777777777773", EGRESS_BODY ("7777777777777773", ", \"egress\": \"none\""), "none"},
	};
	g_autoptr(JsonNode) listed = NULL;
	g_autoptr(GError) error = NULL;
	JsonArray *domains;

	for (guint i = 0; i < G_N_ELEMENTS (cases); i++) {
		g_autoptr(JsonNode) created = NULL;
		g_autofree gchar *domain = g_strconcat ("ppn-", cases[i].vm_id, NULL);
		g_autoptr(virDomain) dom = NULL;
		g_autofree gchar *xml = NULL;
		guint status = request (fx, "POST", "/agent/v1/domains", cases[i].body, fx->fleet, &created, &error);

		g_assert_no_error (error);
		g_assert_cmpuint (status, ==, 201);
		g_assert_cmpstr (json_object_get_string_member (json_node_get_object (created), "egress"), ==,
				 cases[i].expected);
		dom = virDomainLookupByName (fx->keeper, domain);
		g_assert_nonnull (dom);
		/* the test driver keeps the metadata (not the QEMU command line,
		 * which test-domain-xml checks) */
		xml = virDomainGetMetadata (dom, VIR_DOMAIN_METADATA_ELEMENT, "https://ppn.dev/xmlns/vm/1", 0);
		g_assert_nonnull (xml);
		{
			g_autofree gchar *element = g_strdup_printf ("<egress>%s</egress>", cases[i].expected);
			if (strstr (xml, element) == NULL)
				g_error ("expected %s in the metadata, got %s", element, xml);
		}
	}
	g_assert_cmpuint (request (fx, "GET", "/agent/v1/domains", NULL, fx->fleet, &listed, &error), ==, 200);
	domains = json_object_get_array_member (json_node_get_object (listed), "domains");
	g_assert_cmpuint (json_array_get_length (domains), ==, G_N_ELEMENTS (cases));
	for (guint i = 0; i < json_array_get_length (domains); i++) {
		JsonObject *obj = json_array_get_object_element (domains, i);
		const gchar *vm_id = json_object_get_string_member (obj, "vm_id");

		for (guint j = 0; j < G_N_ELEMENTS (cases); j++) {
			if (g_strcmp0 (vm_id, cases[j].vm_id) == 0)
				g_assert_cmpstr (json_object_get_string_member (obj, "egress"), ==, cases[j].expected);
		}
	}
	for (guint i = 0; i < G_N_ELEMENTS (cases); i++) {
		g_autofree gchar *path = g_strconcat ("/agent/v1/domains/", cases[i].vm_id, NULL);
		g_assert_cmpuint (request (fx, "DELETE", path, NULL, fx->fleet, NULL, &error), ==, 204);
	}
}

static void
test_other_refusals (Fixture *fx, gconstpointer data)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(JsonNode) a = NULL;
	g_autoptr(JsonNode) b = NULL;
	g_autoptr(JsonNode) c = NULL;
	g_autoptr(JsonNode) d = NULL;
	g_autofree gchar *url = g_strdup_printf ("https://127.0.0.1:%u/agent/v1/domains", fx->port);
	g_autoptr(SoupMessage) msg = soup_message_new ("POST", url);
	g_autoptr(GBytes) bytes = g_bytes_new_static (CREATE_BODY ("6666666666666666"), strlen (CREATE_BODY ("6666666666666666")));
	g_autoptr(GBytes) answer = NULL;
	guint status;

	g_assert_cmpuint (request (fx, "GET", "/agent/v1/other", NULL, fx->fleet, &a, &error), ==, 404);
	g_assert_cmpstr (error_code (a), ==, "not_found");
	g_assert_cmpuint (request (fx, "PUT", "/agent/v1/domains", "{}", fx->fleet, &b, &error), ==, 405);
	g_assert_cmpstr (error_code (b), ==, "method_not_allowed");
	g_assert_cmpuint (request (fx, "GET", "/agent/v1/domains/6666666666666666", NULL, fx->fleet, &c, &error), ==,
			  405);
	/* libsoup or the handler refuses it; either way nothing reaches libvirt */
	status = request (fx, "DELETE", "/agent/v1/domains/..%2F..%2Fetc", NULL, fx->fleet, &d, &error);
	g_assert_true (status == 400 || status == 404);
	g_clear_pointer (&d, json_node_unref);
	g_assert_cmpuint (request (fx, "DELETE", "/agent/v1/domains/0123456789ABCDEF", NULL, fx->fleet, &d, &error), ==,
			  404);

	/* a body that is not declared as JSON */
	soup_message_set_request_body_from_bytes (msg, "text/plain", bytes);
	soup_message_set_tls_client_certificate (msg, fx->fleet);
	soup_session_send_and_read_async (fx->session, msg, G_PRIORITY_DEFAULT, NULL, async_cb, fx);
	g_main_loop_run (fx->loop);
	answer = soup_session_send_and_read_finish (fx->session, fx->res, &error);
	g_clear_object (&fx->res);
	g_assert_no_error (error);
	g_assert_cmpuint (soup_message_get_status (msg), ==, 415);
}

/* the heartbeat's body: with the list, libvirt ok and the domains in full;
 * without it (libvirt unreachable), libvirt unreachable and no domains,
 * never a list that looks like every VM is gone */
static void
test_heartbeat_body (Fixture *fx, gconstpointer data)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(PpnHeartbeat) hb = NULL;
	g_autoptr(JsonNode) created = NULL;
	g_autoptr(JsonNode) ok = NULL;
	g_autoptr(JsonNode) down = NULL;
	g_autoptr(GPtrArray) infos = NULL;
	JsonObject *obj;
	JsonArray *domains;

	hb = ppn_heartbeat_new (fx->config, fx->manager, fx->catalog, fx->agent, fx->ca, "https://127.0.0.1:1");
	g_assert_cmpuint (request (fx, "POST", "/agent/v1/domains", CREATE_BODY ("2222222222222222"), fx->fleet,
				   &created, &error), ==, 201);
	ppn_domain_manager_list_async (fx->manager, NULL, async_cb, fx);
	g_main_loop_run (fx->loop);
	infos = ppn_domain_manager_list_finish (fx->manager, fx->res, &error);
	g_clear_object (&fx->res);
	g_assert_no_error (error);

	ok = ppn_heartbeat_build (hb, infos);
	obj = json_node_get_object (ok);
	g_assert_cmpstr (json_object_get_string_member (obj, "node_id"), ==, "node1");
	g_assert_cmpstr (json_object_get_string_member (obj, "libvirt"), ==, "ok");
	g_assert_cmpstr (json_object_get_string_member (obj, "accel"), ==, "tcg");
	{
		/* the configured capacity; the free ports are the allocator's */
		JsonObject *cap = json_object_get_object_member (obj, "capacity");
		g_assert_cmpint (json_object_get_int_member (cap, "vcpus"), ==, 4);
		g_assert_cmpint (json_object_get_int_member (cap, "memory_mib"), ==, 1024);
		g_assert_cmpint (json_object_get_int_member (cap, "free_ports"), ==,
				 ppn_domain_manager_count_free_ports (fx->manager));
	}
	domains = json_object_get_array_member (obj, "domains");
	g_assert_cmpuint (json_array_get_length (domains), ==, 1);
	obj = json_array_get_object_element (domains, 0);
	g_assert_cmpstr (json_object_get_string_member (obj, "vm_id"), ==, "2222222222222222");
	g_assert_cmpstr (json_object_get_string_member (obj, "tenant"), ==, "alice");
	g_assert_cmpstr (json_object_get_string_member (obj, "name"), ==, "web1");
	g_assert_cmpstr (json_object_get_string_member (obj, "image"), ==, "test-guest");
	g_assert_cmpint (json_object_get_int_member (obj, "vcpus"), ==, 1);
	g_assert_cmpint (json_object_get_int_member (obj, "memory_mib"), ==, 256);
	g_assert_cmpstr (json_object_get_string_member (obj, "egress"), ==, "nat");

	down = ppn_heartbeat_build (hb, NULL);
	obj = json_node_get_object (down);
	g_assert_cmpstr (json_object_get_string_member (obj, "node_id"), ==, "node1");
	g_assert_cmpstr (json_object_get_string_member (obj, "libvirt"), ==, "unreachable");
	g_assert_cmpuint (json_array_get_length (json_object_get_array_member (obj, "domains")), ==, 0);
	g_assert_true (json_object_has_member (obj, "capacity"));

	g_assert_cmpuint (request (fx, "DELETE", "/agent/v1/domains/2222222222222222", NULL, fx->fleet, NULL, &error),
			  ==, 204);
}

int
main (int argc, char **argv)
{
	g_test_init (&argc, &argv, NULL);
#define ADD(path, func) g_test_add (path, Fixture, NULL, fixture_setup, func, fixture_teardown)
	ADD ("/agent/server/fleet-lifecycle", test_fleet_lifecycle);
	ADD ("/agent/server/conflict", test_conflict);
	ADD ("/agent/server/handshake-refused", test_handshake_refused);
	ADD ("/agent/server/wrong-role", test_wrong_role);
	ADD ("/agent/server/bad-requests", test_bad_requests);
	ADD ("/agent/server/other-refusals", test_other_refusals);
	ADD ("/agent/server/egress", test_egress);
	ADD ("/agent/server/heartbeat-body", test_heartbeat_body);
	g_test_add ("/agent/server/egress-node-none", Fixture, "egress=none\n", fixture_setup, test_egress,
		    fixture_teardown);
#undef ADD
	return g_test_run ();
}
