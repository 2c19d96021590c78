/* The mesh listener: who may talk to the fleet, and what a node's word
 * is worth. A real ppn-fleetd and one real agent on the test driver;
 * other "nodes" are this test, holding certificates it issues. */
#include "config.h"

#include <signal.h>
#include <string.h>

#include "ppn-test-util.h"
#include "ppn-tls.h"

typedef struct {
	PpnTestFleet *fleet;
	gchar *mesh_url;
	GTlsDatabase *ca;
} MeshFixture;

static GTlsCertificate *
issue (MeshFixture *f, const gchar *ca_dir, PpnTlsRole role, const gchar *name)
{
	const gchar *sans[] = {"127.0.0.1", NULL};
	g_autofree gchar *base = g_strdup_printf ("%s/%s-%s-%p", f->fleet->dir, ppn_tls_role_to_string (role), name,
						  (void *)ca_dir);
	g_autofree gchar *cert = g_strconcat (base, ".pem", NULL);
	g_autofree gchar *key = g_strconcat (base, "-key.pem", NULL);
	g_autoptr(GError) error = NULL;
	GTlsCertificate *c;

	ppn_tls_issue (ca_dir, role, name, sans, 1, cert, key, &error);
	g_assert_no_error (error);
	c = ppn_tls_load_certificate (cert, key, &error);
	g_assert_no_error (error);
	return c;
}

/* POST a heartbeat as @cert; 0 when the TLS handshake fails */
static guint
heartbeat (MeshFixture *f, GTlsCertificate *cert, const gchar *body, gchar **raw)
{
	g_autoptr(SoupSession) session = soup_session_new_with_options ("tls-database", f->ca, "timeout", 10, NULL);
	g_autofree gchar *url = g_strconcat (f->mesh_url, "/mesh/v1/heartbeat", NULL);
	g_autoptr(SoupMessage) msg = soup_message_new ("POST", url);
	g_autoptr(GBytes) bytes = g_bytes_new (body, strlen (body));
	g_autoptr(GBytes) reply = NULL;
	g_autoptr(GError) error = NULL;

	soup_message_set_request_body_from_bytes (msg, "application/json", bytes);
	if (cert != NULL)
		soup_message_set_tls_client_certificate (msg, cert);
	reply = soup_session_send_and_read (session, msg, NULL, &error);
	if (reply == NULL) {
		g_test_message ("heartbeat: %s", error->message);
		return 0;
	}
	if (raw != NULL)
		*raw = g_strndup (g_bytes_get_data (reply, NULL), g_bytes_get_size (reply));
	return soup_message_get_status (msg);
}

static gchar *
hb_body (const gchar *node, const gchar *image, const gchar *domains)
{
	return g_strdup_printf ("{\"node_id\":\"%s\",\"agent_url\":\"https://127.0.0.1:9\",\"accel\":\"tcg\","
				"\"capacity\":{\"vcpus\":4,\"memory_mib\":4096,\"free_ports\":10},"
				"\"images\":[{\"name\":\"%s\",\"description\":\"x\"}],\"domains\":[%s]}",
				node, image, domains != NULL ? domains : "");
}

static gboolean
catalog_has (MeshFixture *f, const gchar *image)
{
	guint status = 0;
	g_autoptr(JsonNode) reply = ppn_test_fleet_call (f->fleet, f->fleet->token1, "GET", "/v1/images", NULL,
							 &status, NULL);
	JsonArray *images = json_object_get_array_member (json_node_get_object (reply), "images");

	for (guint i = 0; i < json_array_get_length (images); i++) {
		if (g_strcmp0 (json_object_get_string_member (json_array_get_object_element (images, i), "name"),
			       image) == 0)
			return TRUE;
	}
	return FALSE;
}

static void
fixture_setup (MeshFixture *f, gconstpointer data)
{
	PpnTestFleetOptions opts = {.libvirt_uri = "test:///default", .max_vms = 4};
	g_autoptr(GError) error = NULL;
	g_autofree gchar *ca_pem = NULL;

	f->fleet = ppn_test_fleet_new (&opts, &error);
	g_assert_no_error (error);
	ppn_test_fleet_start (f->fleet, &error);
	g_assert_no_error (error);
	f->mesh_url = g_strdup_printf ("https://127.0.0.1:%u", f->fleet->mesh_port);
	ca_pem = g_build_filename (f->fleet->ca_dir, "ca.pem", NULL);
	f->ca = ppn_tls_load_ca (ca_pem, &error);
	g_assert_no_error (error);
}

static void
fixture_teardown (MeshFixture *f, gconstpointer data)
{
	g_clear_object (&f->ca);
	g_free (f->mesh_url);
	ppn_test_fleet_free (f->fleet);
}

/* only certificates of the fleet CA get through the handshake, and only
 * agents may heartbeat */
static void
test_who_may_heartbeat (MeshFixture *f, gconstpointer data)
{
	g_autofree gchar *foreign_ca = g_build_filename (f->fleet->dir, "foreign-ca", NULL);
	g_autoptr(GError) error = NULL;
	g_autoptr(GTlsCertificate) agent = issue (f, f->fleet->ca_dir, PPN_TLS_ROLE_AGENT, "node-a");
	g_autoptr(GTlsCertificate) op = issue (f, f->fleet->ca_dir, PPN_TLS_ROLE_OPERATOR, "node-a");
	g_autoptr(GTlsCertificate) fleet = issue (f, f->fleet->ca_dir, PPN_TLS_ROLE_FLEET, "node-a");
	g_autoptr(GTlsCertificate) foreign = NULL;
	g_autofree gchar *body = hb_body ("node-a", "img-a", NULL);
	g_autofree gchar *raw = NULL;

	ppn_tls_ca_create (foreign_ca, "someone else's CA", 1, &error);
	g_assert_no_error (error);
	foreign = issue (f, foreign_ca, PPN_TLS_ROLE_AGENT, "node-a");

	g_assert_cmpuint (heartbeat (f, NULL, body, NULL), ==, 0);
	g_assert_cmpuint (heartbeat (f, foreign, body, NULL), ==, 0);
	g_assert_cmpuint (heartbeat (f, op, body, &raw), ==, 403);
	g_assert_nonnull (strstr (raw, "forbidden"));
	g_assert_cmpuint (heartbeat (f, fleet, body, NULL), ==, 403);
	g_assert_false (catalog_has (f, "img-a"));
	g_assert_cmpuint (heartbeat (f, agent, body, NULL), ==, 200);
	g_assert_true (catalog_has (f, "img-a"));
}

/* a node's identity is its certificate's */
static void
test_spoofed_node_id (MeshFixture *f, gconstpointer data)
{
	g_autoptr(GTlsCertificate) agent = issue (f, f->fleet->ca_dir, PPN_TLS_ROLE_AGENT, "node-a");
	g_autofree gchar *body = hb_body ("node-b", "img-b", NULL);
	g_autofree gchar *raw = NULL;

	g_assert_cmpuint (heartbeat (f, agent, body, &raw), ==, 403);
	g_test_message ("%s", raw);
	g_assert_nonnull (strstr (raw, "node-b"));
	g_assert_false (catalog_has (f, "img-b"));
}

/* what a node says about a VM never changes its owner or its placement */
static void
test_spoofed_domains (MeshFixture *f, gconstpointer data)
{
	guint status = 0;
	g_autoptr(JsonNode) vm = ppn_test_fleet_call (f->fleet, f->fleet->token1, "POST", "/v1/vms",
						      "{\"name\":\"victim\",\"image\":\"test-guest\"}", &status, NULL);
	const gchar *id;
	g_autofree gchar *path = NULL;
	g_autofree gchar *as_bob = NULL;
	g_autofree gchar *as_alice = NULL;
	g_autofree gchar *garbage = NULL;
	g_autoptr(GTlsCertificate) other = issue (f, f->fleet->ca_dir, PPN_TLS_ROLE_AGENT, "node-c");
	g_autoptr(GTlsCertificate) own = issue (f, f->fleet->ca_dir, PPN_TLS_ROLE_AGENT, f->fleet->node_id);

	g_assert_cmpuint (status, ==, 201);
	id = json_object_get_string_member (json_node_get_object (vm), "id");
	path = g_strconcat ("/v1/vms/", id, NULL);
	as_bob = g_strdup_printf ("{\"vm_id\":\"%s\",\"tenant\":\"bob\",\"state\":\"running\",\"port_forwards\":[]}", id);
	as_alice = g_strdup_printf ("{\"vm_id\":\"%s\",\"tenant\":\"alice\",\"state\":\"running\",\"port_forwards\":[]}",
				    id);
	garbage = g_strdup ("{\"vm_id\":\"../../x\",\"tenant\":\"bob\"}");

	{
		/* another node claims the VM, for bob and for alice */
		g_autofree gchar *b1 = hb_body ("node-c", "img-c", as_bob);
		g_autofree gchar *b2 = hb_body ("node-c", "img-c", as_alice);
		g_autofree gchar *b3 = hb_body ("node-c", "img-c", garbage);
		g_assert_cmpuint (heartbeat (f, other, b1, NULL), ==, 403);
		g_assert_cmpuint (heartbeat (f, other, b2, NULL), ==, 403);
		g_assert_cmpuint (heartbeat (f, other, b3, NULL), ==, 400);
		/* a refused heartbeat does not make the node alive */
		g_assert_false (catalog_has (f, "img-c"));
	}
	{
		/* the VM's own node, compromised, says it is bob's */
		g_autofree gchar *body = hb_body (f->fleet->node_id, "test-guest", as_bob);
		g_assert_cmpuint (heartbeat (f, own, body, NULL), ==, 403);
	}
	{
		g_autoptr(JsonNode) a = ppn_test_fleet_call (f->fleet, f->fleet->token1, "GET", path, NULL, &status, NULL);
		g_assert_cmpuint (status, ==, 200);
	}
	{
		g_autoptr(JsonNode) b = ppn_test_fleet_call (f->fleet, f->fleet->token2, "GET", path, NULL, &status, NULL);
		g_assert_cmpuint (status, ==, 404);
	}
	{
		g_autoptr(JsonNode) l = ppn_test_fleet_call (f->fleet, f->fleet->token2, "GET", "/v1/vms", NULL, &status, NULL);
		g_assert_cmpuint (json_array_get_length (json_object_get_array_member (json_node_get_object (l), "vms")), ==, 0);
	}
}

/* a node advertising another node's address gets nothing delivered there:
 * the fleet checks who answers before it sends the command */
static void
test_misdirected_address (MeshFixture *f, gconstpointer data)
{
	g_autoptr(GTlsCertificate) liar = issue (f, f->fleet->ca_dir, PPN_TLS_ROLE_AGENT, "node-d");
	g_autofree gchar *body = g_strdup_printf (
		"{\"node_id\":\"node-d\",\"agent_url\":\"%s\",\"accel\":\"tcg\","
		"\"capacity\":{\"vcpus\":1024,\"memory_mib\":10000000,\"free_ports\":1000},"
		"\"images\":[{\"name\":\"test-guest\",\"description\":\"x\"}],\"domains\":[]}",
		f->fleet->agent_url);
	g_autofree gchar *raw = NULL;
	guint status = 0;
	pid_t pid;

	/* the real node is alive at that address: refused outright */
	g_assert_cmpuint (heartbeat (f, liar, body, &raw), ==, 409);
	g_test_message ("%s", raw);
	/* once the real node is silent, the liar may claim the address... (the
	 * real agent is stopped, not killed, so its listening socket stays:
	 * a released port could be taken by anyone's outgoing connection) */
	pid = (pid_t)g_ascii_strtoll (g_subprocess_get_identifier (f->fleet->agentd), NULL, 10);
	kill (pid, SIGSTOP);
	{
		gint64 deadline = g_get_monotonic_time () + 40 * G_USEC_PER_SEC;
		guint st = 0;
		while ((st = heartbeat (f, liar, body, NULL)) != 200 && g_get_monotonic_time () < deadline)
			g_usleep (500000);
		/* ...and the real agent answers at that address again (its own
		 * heartbeats are refused now, the liar holds the address) */
		kill (pid, SIGCONT);
		g_assert_cmpuint (st, ==, 200);
	}
	{
		/* the fleet places on the liar (it offers the most room) and
		 * finds someone else's certificate at the address: no create */
		g_autofree gchar *answer = NULL;
		g_autoptr(JsonNode) vm = ppn_test_fleet_call (f->fleet, f->fleet->token1, "POST", "/v1/vms",
							      "{\"name\":\"lured\",\"image\":\"test-guest\"}",
							      &status, &answer);
		g_test_message ("%u %s", status, answer);
		g_assert_cmpuint (status, ==, 503);
	}
	{
		/* the real agent never received it */
		g_autofree gchar *log_path = g_build_filename (f->fleet->dir, "agentd.log", NULL);
		g_autofree gchar *log = NULL;
		g_assert_true (g_file_get_contents (log_path, &log, NULL, NULL));
		g_assert_null (strstr (log, "Created domain"));
		g_assert_null (strstr (log, "POST /agent/v1/domains"));
	}
}

int
main (int argc, char **argv)
{
	g_test_init (&argc, &argv, NULL);
	g_test_add ("/mesh/who-may-heartbeat", MeshFixture, NULL, fixture_setup, test_who_may_heartbeat,
		    fixture_teardown);
	g_test_add ("/mesh/spoofed-node-id", MeshFixture, NULL, fixture_setup, test_spoofed_node_id, fixture_teardown);
	g_test_add ("/mesh/spoofed-domains", MeshFixture, NULL, fixture_setup, test_spoofed_domains, fixture_teardown);
	g_test_add ("/mesh/misdirected-address", MeshFixture, NULL, fixture_setup, test_misdirected_address,
		    fixture_teardown);
	return g_test_run ();
}
