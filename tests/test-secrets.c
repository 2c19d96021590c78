/* Case 03: a token must appear in no log line at any level, no database
 * row, no file of the fleet's, whatever is done with it. */
#include "config.h"

#include <string.h>

#include "ppn-test-util.h"

#define CANARY "ppn_CANARYxCANARYxCANARYxCANARYx0123456789a"
#define NEEDLE "CANARY"

static void
call_raw (PpnTestFleet *fleet, const gchar *method, const gchar *path, const gchar *auth, const gchar *body)
{
	g_autofree gchar *url = g_strconcat (fleet->url, path, NULL);
	g_autoptr(SoupMessage) msg = soup_message_new (method, url);
	g_autoptr(GBytes) reply = NULL;

	g_assert_nonnull (msg);
	if (auth != NULL)
		soup_message_headers_replace (soup_message_get_request_headers (msg), "Authorization", auth);
	if (body != NULL) {
		g_autoptr(GBytes) bytes = g_bytes_new (body, strlen (body));
		soup_message_set_request_body_from_bytes (msg, "application/json", bytes);
	}
	reply = soup_session_send_and_read (fleet->session, msg, NULL, NULL);
	g_assert_nonnull (reply);
	/* not even the answers echo it */
	if (g_bytes_get_size (reply) > 0)
		g_assert_null (memmem (g_bytes_get_data (reply, NULL), g_bytes_get_size (reply), NEEDLE, strlen (NEEDLE)));
}

/* every regular file below @dir, recursively */
static void
search_tree (const gchar *dir, guint *files, GPtrArray *hits)
{
	g_autoptr(GDir) d = g_dir_open (dir, 0, NULL);
	const gchar *name;

	if (d == NULL)
		return;
	while ((name = g_dir_read_name (d)) != NULL) {
		g_autofree gchar *path = g_build_filename (dir, name, NULL);
		g_autofree gchar *contents = NULL;
		gsize len = 0;

		if (g_file_test (path, G_FILE_TEST_IS_SYMLINK))
			continue;
		if (g_file_test (path, G_FILE_TEST_IS_DIR)) {
			search_tree (path, files, hits);
			continue;
		}
		if (!g_file_get_contents (path, &contents, &len, NULL))
			continue;
		(*files)++;
		if (memmem (contents, len, NEEDLE, strlen (NEEDLE)) != NULL)
			g_ptr_array_add (hits, g_strdup (path));
	}
}

static void
test_token_nowhere (void)
{
	PpnTestFleetOptions opts = {.libvirt_uri = "test:///default", .max_vms = 4, .token1 = CANARY};
	g_autoptr(GError) error = NULL;
	g_autoptr(PpnTestFleet) fleet = ppn_test_fleet_new (&opts, &error);
	g_autofree gchar *bearer = g_strconcat ("Bearer ", CANARY, NULL);
	g_autofree gchar *truncated = g_strndup (bearer, strlen (bearer) - 3);
	g_autofree gchar *longer = g_strconcat (bearer, "zz", NULL);
	g_autofree gchar *basic = g_strconcat ("Basic ", CANARY, NULL);
	g_autofree gchar *raw_token = g_strdup (CANARY);
	g_autofree gchar *query = g_strconcat ("/v1/vms?access_token=", CANARY, NULL);
	g_autofree gchar *query2 = g_strconcat ("/v1/vms?token=", CANARY, "&limit=1", NULL);
	g_autofree gchar *bad_page = g_strconcat ("/v1/vms?page_token=", CANARY, NULL);
	g_autofree gchar *vm_path = NULL;
	g_autoptr(GPtrArray) hits = g_ptr_array_new_with_free_func (g_free);
	guint files = 0, status = 0;

	g_assert_no_error (error);
	ppn_test_fleet_start (fleet, &error);
	g_assert_no_error (error);

	/* valid use, the whole lifecycle */
	{
		g_autoptr(JsonNode) vm = ppn_test_fleet_call (fleet, CANARY, "POST", "/v1/vms",
							      "{\"name\":\"c1\",\"image\":\"test-guest\","
							      "\"port_forwards\":[{\"guest_port\":80}]}",
							      &status, NULL);
		g_assert_cmpuint (status, ==, 201);
		vm_path = g_strconcat ("/v1/vms/", json_object_get_string_member (json_node_get_object (vm), "id"),
				       NULL);
	}
	call_raw (fleet, "GET", "/v1/vms", bearer, NULL);
	call_raw (fleet, "GET", vm_path, bearer, NULL);
	call_raw (fleet, "GET", "/v1/quota", bearer, NULL);
	/* invalid, truncated, longer, wrong scheme, bare, in the query */
	call_raw (fleet, "GET", "/v1/vms", truncated, NULL);
	call_raw (fleet, "GET", "/v1/vms", longer, NULL);
	call_raw (fleet, "GET", "/v1/vms", basic, NULL);
	call_raw (fleet, "GET", "/v1/vms", raw_token, NULL);
	call_raw (fleet, "GET", query, NULL, NULL);
	call_raw (fleet, "GET", query2, bearer, NULL);
	/* requests the server fails: malformed bodies, a bad page token,
	 * unknown paths, wrong methods */
	call_raw (fleet, "POST", "/v1/vms", bearer, "{\"name\":");
	call_raw (fleet, "POST", "/v1/vms", bearer, "{\"name\":\"x\",\"image\":\"test-guest\",\"vcpus\":\"many\"}");
	call_raw (fleet, "GET", bad_page, bearer, NULL);
	call_raw (fleet, "GET", "/v1/nothing", bearer, NULL);
	call_raw (fleet, "PUT", "/v1/quota", bearer, "{}");
	call_raw (fleet, "DELETE", vm_path, bearer, NULL);
	call_raw (fleet, "DELETE", vm_path, bearer, NULL);

	/* every file of the fleet's: both daemons' logs (G_MESSAGES_DEBUG=all),
	 * fleet.db and its WAL, the tenants file, the configs, the agent's
	 * state; then the daemons stopped, so everything is flushed */
	ppn_test_fleet_stop_fleetd (fleet, SIGTERM);
	ppn_test_fleet_stop_agentd (fleet, SIGTERM);
	search_tree (fleet->dir, &files, hits);
	g_test_message ("searched %u files", files);
	g_assert_cmpuint (files, >=, 8);
	/* the audit trail was among them, and holds every attempt above:
	 * the denied ones too, without what was sent */
	{
		g_autofree gchar *audit = g_build_filename (fleet->dir, "fleet", "audit.log", NULL);
		g_autofree gchar *ledger = g_build_filename (fleet->dir, "fleet", "ledger", "ledger", NULL);
		g_autofree gchar *data = NULL;
		g_assert_true (g_file_get_contents (audit, &data, NULL, NULL));
		g_assert_nonnull (strstr (data, "\"op\":\"authenticate\""));
		g_assert_nonnull (strstr (data, "a credential in the query string"));
		g_assert_true (g_file_test (ledger, G_FILE_TEST_IS_REGULAR));
	}
	for (guint i = 0; i < hits->len; i++)
		g_test_message ("token found in %s", (const gchar *)g_ptr_array_index (hits, i));
	g_assert_cmpuint (hits->len, ==, 0);
}

int
main (int argc, char **argv)
{
	g_test_init (&argc, &argv, NULL);
	g_test_add_func ("/secrets/token-nowhere", test_token_nowhere);
	return g_test_run ();
}
