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

/* GET http://127.0.0.1:port/ with a short timeout: the forward accepts
 * connections before the guest is up, so a request can hang */
static gchar *
http_get (guint16 port, GError **error)
{
	g_autoptr(SoupSession) session = soup_session_new_with_options ("timeout", 2, NULL);
	g_autofree gchar *url = g_strdup_printf ("http://127.0.0.1:%u/", port);
	g_autoptr(SoupMessage) msg = soup_message_new ("GET", url);
	g_autoptr(GBytes) body = soup_session_send_and_read (session, msg, NULL, error);

	if (body == NULL)
		return NULL;
	if (soup_message_get_status (msg) != 200) {
		g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, "HTTP %u", soup_message_get_status (msg));
		return NULL;
	}
	return g_strstrip (g_strndup (g_bytes_get_data (body, NULL), g_bytes_get_size (body)));
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

static void
test_guest_reachable (void)
{
	PpnTestFleetOptions opts = {.libvirt_uri = "qemu:///system", .real_guest = TRUE, .max_vms = 4};
	g_autoptr(GError) error = NULL;
	g_autoptr(PpnTestFleet) fleet = NULL;
	g_autoptr(JsonNode) created = NULL;
	g_autofree gchar *id = NULL;
	g_autofree gchar *path = NULL;
	g_autofree gchar *answer = NULL;
	g_autofree gchar *raw = NULL;
	g_autoptr(GPtrArray) domains = NULL;
	guint status = 0;
	guint16 host_port;
	gint64 t0, t_created, t_answer;

	if (!ppn_test_libvirt_available ("qemu:///system")) {
		if (g_getenv ("PPN_TEST_REQUIRE_LIBVIRT") != NULL)
			g_error ("qemu:///system is not reachable and PPN_TEST_REQUIRE_LIBVIRT is set");
		g_test_skip ("qemu:///system is not reachable (start libvirtd)");
		return;
	}
	fleet = ppn_test_fleet_new (&opts, &error);
	g_assert_no_error (error);
	ppn_test_fleet_start_fleetd (fleet, &error);
	g_assert_no_error (error);
	ppn_test_fleet_start_agentd (fleet, &error);
	g_assert_no_error (error);
	ppn_test_fleet_wait_node (fleet, 30, &error);
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
	while (g_get_monotonic_time () - t0 < GUEST_TIMEOUT_S * G_USEC_PER_SEC) {
		g_autoptr(GError) get_error = NULL;
		g_free (answer);
		answer = http_get (host_port, &get_error);
		if (answer != NULL && g_strcmp0 (answer, id) == 0)
			break;
		g_usleep (200000);
	}
	t_answer = g_get_monotonic_time ();
	g_assert_cmpstr (answer, ==, id);
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
		g_autofree gchar *again = http_get (host_port, NULL);
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

int
main (int argc, char **argv)
{
	g_test_init (&argc, &argv, NULL);
	g_test_add_func ("/e2e/qemu/guest-reachable", test_guest_reachable);
	return g_test_run ();
}
