/* End to end on real QEMU (TCG) through libvirtd: a tenant's POST starts
 * a guest that answers on its forwarded host port with its own VM id. */
#include "config.h"

#include <gio/gio.h>
#include <string.h>

#include "ppn-test-util.h"

#define GUEST_TIMEOUT_S 120

static JsonObject *
obj (JsonNode *node)
{
	g_assert_nonnull (node);
	g_assert_true (JSON_NODE_HOLDS_OBJECT (node));
	return json_node_get_object (node);
}

static gboolean
port_open (guint16 port)
{
	g_autoptr(GSocketClient) client = g_socket_client_new ();
	g_autoptr(GSocketConnection) conn = NULL;

	g_socket_client_set_timeout (client, 2);
	conn = g_socket_client_connect_to_host (client, "127.0.0.1", port, NULL, NULL);
	return conn != NULL;
}

/* FALSE, and the test skipped, without libvirtd (unless it is required) */
static gboolean
qemu_available (void)
{
	if (ppn_test_libvirt_available ("qemu:///system"))
		return TRUE;
	if (g_getenv ("PPN_TEST_REQUIRE_LIBVIRT") != NULL)
		g_error ("qemu:///system is not reachable and PPN_TEST_REQUIRE_LIBVIRT is set");
	g_test_skip ("qemu:///system is not reachable (start libvirtd)");
	return FALSE;
}

/* the guest on @port answers with @id within GUEST_TIMEOUT_S of @t0 */
static void
assert_guest_answers (guint16 port, const gchar *id, gint64 t0)
{
	g_autofree gchar *answer = NULL;

	while (g_get_monotonic_time () - t0 < GUEST_TIMEOUT_S * G_USEC_PER_SEC) {
		g_free (answer);
		answer = ppn_test_http_get (port, NULL);
		if (answer != NULL && g_strcmp0 (answer, id) == 0)
			break;
		g_usleep (200000);
	}
	g_assert_cmpstr (answer, ==, id);
}

static void
test_guest_reachable (void)
{
	PpnTestFleetOptions opts = {.libvirt_uri = "qemu:///system", .real_guest = TRUE, .max_vms = 4};
	g_autoptr(GError) error = NULL;
	g_autoptr(PpnTestFleet) fleet = NULL;
	g_autoptr(JsonNode) created = NULL;
	g_autofree gchar *id = NULL;
	g_autofree gchar *path = NULL;
	g_autofree gchar *raw = NULL;
	g_autoptr(GPtrArray) domains = NULL;
	guint status = 0;
	guint16 host_port;
	gint64 t0, t_created, t_answer;

	if (!qemu_available ())
		return;
	fleet = ppn_test_fleet_new (&opts, &error);
	g_assert_no_error (error);
	ppn_test_fleet_start (fleet, &error);
	g_assert_no_error (error);

	t0 = g_get_monotonic_time ();
	created = ppn_test_fleet_call (fleet, fleet->token1, "POST", "/v1/vms",
				       "{\"name\":\"e2e\",\"image\":\"test-guest\",\"vcpus\":1,\"memory_mib\":256,"
				       "\"port_forwards\":[{\"guest_port\":80,\"proto\":\"tcp\"}]}",
				       &status, &raw);
	t_created = g_get_monotonic_time ();
	if (status != 201)
		g_error ("create: expected 201, got %u: %s", status, raw);
	id = g_strdup (json_object_get_string_member (obj (created), "id"));
	host_port = (guint16)json_object_get_int_member (
		json_array_get_object_element (json_object_get_array_member (obj (created), "port_forwards"), 0),
		"host_port");
	g_test_message ("VM %s forwarded to 127.0.0.1:%u", id, host_port);

	/* the domain is really there, named and owned as documented */
	domains = ppn_test_node_domains (fleet);
	g_assert_cmpuint (domains->len, ==, 1);
	{
		g_autofree gchar *dom = g_strconcat ("ppn-", id, NULL);
		const gchar *argv[] = {"virsh", "-c", "qemu:///system", "metadata", dom, "https://ppn.dev/xmlns/vm/1", NULL};
		g_autofree gchar *meta = ppn_test_run (argv, NULL);
		g_assert_cmpstr (g_ptr_array_index (domains, 0), ==, dom);
		g_assert_nonnull (meta);
		g_assert_nonnull (strstr (meta, "<tenant>alice</tenant>"));
	}

	/* the guest answers through its forwarded port with its own id */
	assert_guest_answers (host_port, id, t0);
	t_answer = g_get_monotonic_time ();
	g_test_message ("POST -> 201: %.0f ms; POST -> guest answers: %.0f ms", (t_created - t0) / 1000.0,
			(t_answer - t0) / 1000.0);

	/* the other tenant sees nothing of it */
	path = g_strconcat ("/v1/vms/", id, NULL);
	{
		g_autoptr(JsonNode) list = ppn_test_fleet_call (fleet, fleet->token2, "GET", "/v1/vms", NULL, &status, NULL);
		g_assert_cmpuint (status, ==, 200);
		g_assert_cmpuint (json_array_get_length (json_object_get_array_member (obj (list), "vms")), ==, 0);
	}
	{
		g_autoptr(JsonNode) other = ppn_test_fleet_call (fleet, fleet->token2, "GET", path, NULL, &status, NULL);
		g_assert_cmpuint (status, ==, 404);
	}
	{
		g_autoptr(JsonNode) other = ppn_test_fleet_call (fleet, fleet->token2, "DELETE", path, NULL, &status, NULL);
		g_assert_cmpuint (status, ==, 404);
	}
	{
		/* and A's guest still answers */
		g_autofree gchar *again = ppn_test_http_get (host_port, NULL);
		g_assert_cmpstr (again, ==, id);
	}

	/* delete: the domain, the port and the record are gone */
	{
		g_autoptr(JsonNode) r = ppn_test_fleet_call (fleet, fleet->token1, "DELETE", path, NULL, &status, NULL);
		g_assert_cmpuint (status, ==, 204);
	}
	g_clear_pointer (&domains, g_ptr_array_unref);
	domains = ppn_test_node_domains (fleet);
	g_assert_cmpuint (domains->len, ==, 0);
	g_assert_false (port_open (host_port));
	{
		g_autoptr(JsonNode) list = ppn_test_fleet_call (fleet, fleet->token1, "GET", "/v1/vms", NULL, &status, NULL);
		g_assert_cmpuint (json_array_get_length (json_object_get_array_member (obj (list), "vms")), ==, 0);
	}
	{
		g_autoptr(JsonNode) gone = ppn_test_fleet_call (fleet, fleet->token1, "GET", path, NULL, &status, NULL);
		g_assert_cmpuint (status, ==, 404);
	}
}

typedef struct {
	gchar *url;
	gchar *auth;
	GTlsDatabase *ca;
	volatile gint status;
} RacingPost;

/* the POST runs in its own thread with its own session, so the test can
 * watch and DELETE while it is in flight */
static gpointer
racing_post_thread (gpointer data)
{
	RacingPost *p = data;
	g_autoptr(SoupSession) session = soup_session_new_with_options ("tls-database", p->ca, "timeout", 300, NULL);
	g_autoptr(SoupMessage) msg = soup_message_new ("POST", p->url);
	g_autoptr(GBytes) body = g_bytes_new_static ("{\"name\":\"racer\",\"image\":\"test-guest\","
						     "\"port_forwards\":[{\"guest_port\":80}]}", 73);
	g_autoptr(GBytes) reply = NULL;

	soup_message_headers_replace (soup_message_get_request_headers (msg), "Authorization", p->auth);
	soup_message_set_request_body_from_bytes (msg, "application/json", body);
	reply = soup_session_send_and_read (session, msg, NULL, NULL);
	g_atomic_int_set (&p->status, reply != NULL ? (gint)soup_message_get_status (msg) : 1);
	return NULL;
}

/* case 06: DELETE while the create of the same VM is in flight ends with
 * no process, the ports and the quota slot free, one final state */
static void
test_delete_during_create (void)
{
	PpnTestFleetOptions opts = {.libvirt_uri = "qemu:///system", .real_guest = TRUE, .max_vms = 4};
	g_autoptr(GError) error = NULL;
	g_autoptr(PpnTestFleet) fleet = NULL;
	g_autofree gchar *url = NULL;
	g_autofree gchar *auth = NULL;
	g_autofree gchar *id = NULL;
	RacingPost racer = {NULL, NULL, NULL, 0};
	GThread *thread;
	guint status = 0;
	gint64 deadline;

	if (!qemu_available ())
		return;
	fleet = ppn_test_fleet_new (&opts, &error);
	g_assert_no_error (error);
	ppn_test_fleet_start (fleet, &error);
	g_assert_no_error (error);

	url = g_strconcat (fleet->url, "/v1/vms", NULL);
	auth = g_strconcat ("Bearer ", fleet->token1, NULL);
	racer.url = url;
	racer.auth = auth;
	racer.ca = soup_session_get_tls_database (fleet->session);
	thread = g_thread_new ("racing-post", racing_post_thread, &racer);

	/* the pending VM shows in the listing while its domain starts */
	deadline = g_get_monotonic_time () + 30 * G_USEC_PER_SEC;
	while (id == NULL && g_atomic_int_get (&racer.status) == 0 && g_get_monotonic_time () < deadline) {
		g_autoptr(SoupSession) s2 = soup_session_new_with_options ("tls-database",
									   soup_session_get_tls_database (fleet->session), NULL);
		g_autofree gchar *list_url = g_strconcat (fleet->url, "/v1/vms", NULL);
		g_autoptr(SoupMessage) list = soup_message_new ("GET", list_url);
		g_autoptr(GBytes) reply = NULL;
		g_autoptr(JsonParser) parser = json_parser_new ();
		soup_message_headers_replace (soup_message_get_request_headers (list), "Authorization", auth);
		reply = soup_session_send_and_read (s2, list, NULL, NULL);
		if (reply != NULL && json_parser_load_from_data (parser, g_bytes_get_data (reply, NULL),
								 (gssize)g_bytes_get_size (reply), NULL)) {
			JsonArray *vms = json_object_get_array_member (json_node_get_object (json_parser_get_root (parser)), "vms");
			if (json_array_get_length (vms) == 1) {
				JsonObject *vm = json_array_get_object_element (vms, 0);
				g_test_message ("seen %s in state %s", json_object_get_string_member (vm, "id"),
						json_object_get_string_member (vm, "state"));
				if (g_strcmp0 (json_object_get_string_member (vm, "state"), "pending") == 0)
					id = g_strdup (json_object_get_string_member (vm, "id"));
			}
		}
	}
	if (id == NULL) {
		g_thread_join (thread);
		g_test_skip ("the create finished before the test could see it pending");
		return;
	}
	{
		g_autofree gchar *path = g_strconcat ("/v1/vms/", id, NULL);
		g_autoptr(SoupSession) s3 = soup_session_new_with_options ("tls-database",
									   soup_session_get_tls_database (fleet->session),
									   "timeout", 120, NULL);
		g_autofree gchar *del_url = g_strconcat (fleet->url, path, NULL);
		g_autoptr(SoupMessage) del = soup_message_new ("DELETE", del_url);
		g_autoptr(GBytes) reply = NULL;
		soup_message_headers_replace (soup_message_get_request_headers (del), "Authorization", auth);
		reply = soup_session_send_and_read (s3, del, NULL, NULL);
		g_assert_cmpuint (soup_message_get_status (del), ==, 204);
	}
	g_thread_join (thread);
	g_test_message ("the racing POST answered %d", racer.status);
	g_assert_cmpint (racer.status, ==, 409);
	{
		g_autoptr(GPtrArray) left = ppn_test_node_domains (fleet);
		g_assert_cmpuint (left->len, ==, 0);
	}
	{
		g_autoptr(JsonNode) q = ppn_test_fleet_call (fleet, fleet->token1, "GET", "/v1/quota", NULL, &status, NULL);
		g_assert_cmpint (json_object_get_int_member (json_node_get_object (q), "used"), ==, 0);
	}
	{
		g_autoptr(JsonNode) l = ppn_test_fleet_call (fleet, fleet->token1, "GET", "/v1/vms", NULL, &status, NULL);
		g_assert_cmpuint (json_array_get_length (json_object_get_array_member (json_node_get_object (l), "vms")), ==, 0);
	}
}

/* issue 7: two agents on this machine, each with its own host port range,
 * both take VMs (spread), and each guest answers on its own port */
static void
test_two_nodes (void)
{
	PpnTestFleetOptions opts = {.libvirt_uri = "qemu:///system", .real_guest = TRUE, .max_vms = 4,
				    .agent_count = 2};
	g_autoptr(PpnTestFleet) fleet = NULL;
	PpnTestAgent *second;
	const gchar *nodes[2];
	guint16 firsts[2], lasts[2], ports[2] = {0, 0};
	gchar *ids[2] = {NULL, NULL};
	gint64 t0;
	guint status = 0;

	if (!qemu_available ())
		return;
	fleet = ppn_test_fleet_new_started (&opts);
	second = g_ptr_array_index (fleet->agents, 0);
	nodes[0] = fleet->node_id;
	nodes[1] = second->node_id;
	firsts[0] = fleet->port_first;
	lasts[0] = fleet->port_last;
	firsts[1] = second->port_first;
	lasts[1] = second->port_last;
	g_test_message ("nodes %s (ports %u-%u) and %s (ports %u-%u)", nodes[0], firsts[0], lasts[0], nodes[1],
			firsts[1], lasts[1]);
	g_assert_true (lasts[0] < firsts[1] || lasts[1] < firsts[0]);

	t0 = g_get_monotonic_time ();
	for (guint i = 0; i < 2; i++) {
		g_autofree gchar *body = g_strdup_printf ("{\"name\":\"spread%u\",\"image\":\"test-guest\","
							  "\"port_forwards\":[{\"guest_port\":80}]}",
							  i);
		g_autofree gchar *raw = NULL;
		g_autoptr(JsonNode) vm = ppn_test_fleet_call (fleet, fleet->token1, "POST", "/v1/vms", body, &status, &raw);
		const gchar *node;
		guint n;
		gint64 port;

		if (status != 201)
			g_error ("create %u: expected 201, got %u: %s", i, status, raw);
		node = json_object_get_string_member (obj (vm), "node");
		port = json_object_get_int_member (
			json_array_get_object_element (json_object_get_array_member (obj (vm), "port_forwards"), 0),
			"host_port");
		n = g_strcmp0 (node, nodes[0]) == 0 ? 0 : 1;
		g_test_message ("VM %s on %s, host port %" G_GINT64_FORMAT, json_object_get_string_member (obj (vm), "id"),
				node, port);
		/* spread: the second goes where the first is not */
		g_assert_cmpstr (node, ==, nodes[n]);
		g_assert_null (ids[n]);
		g_assert_cmpint (port, >=, firsts[n]);
		g_assert_cmpint (port, <=, lasts[n]);
		ids[n] = g_strdup (json_object_get_string_member (obj (vm), "id"));
		ports[n] = (guint16)port;
	}
	g_assert_cmpuint (ports[0], !=, ports[1]);

	/* each node runs its own domain, and each guest answers on its port */
	for (guint n = 0; n < 2; n++) {
		g_autoptr(GPtrArray) domains = ppn_test_node_domains_on (fleet, nodes[n]);
		g_autofree gchar *dom = g_strconcat ("ppn-", ids[n], NULL);
		g_assert_cmpuint (domains->len, ==, 1);
		g_assert_cmpstr (g_ptr_array_index (domains, 0), ==, dom);
	}
	for (guint n = 0; n < 2; n++)
		assert_guest_answers (ports[n], ids[n], t0);
	g_test_message ("both guests answer after %.0f ms", (g_get_monotonic_time () - t0) / 1000.0);

	for (guint n = 0; n < 2; n++) {
		g_autofree gchar *path = g_strconcat ("/v1/vms/", ids[n], NULL);
		g_autoptr(JsonNode) r = ppn_test_fleet_call (fleet, fleet->token1, "DELETE", path, NULL, &status, NULL);
		g_autoptr(GPtrArray) domains = NULL;
		g_assert_cmpuint (status, ==, 204);
		domains = ppn_test_node_domains_on (fleet, nodes[n]);
		g_assert_cmpuint (domains->len, ==, 0);
		g_assert_false (port_open (ports[n]));
		g_free (ids[n]);
	}
}

int
main (int argc, char **argv)
{
	g_test_init (&argc, &argv, NULL);
	g_test_add_func ("/e2e/qemu/guest-reachable", test_guest_reachable);
	g_test_add_func ("/e2e/qemu/delete-during-create", test_delete_during_create);
	g_test_add_func ("/e2e/qemu/two-nodes", test_two_nodes);
	return g_test_run ();
}
