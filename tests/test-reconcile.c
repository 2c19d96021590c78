/* Faults and what the fleet makes of them: ppn-fleetd killed during
 * creates, a node gone silent, domains gone or appearing behind the
 * fleet's back. A real fleet on libvirt's test driver. */
#include "config.h"

#include <signal.h>
#include <string.h>

#include "ppn-test-util.h"

static PpnTestFleet *
start_fleet (guint node_timeout, guint lost_grace)
{
	PpnTestFleetOptions opts = {.libvirt_uri = "test:///default", .max_vms = 50,
				    .node_timeout = node_timeout, .lost_grace = lost_grace};

	return ppn_test_fleet_new_started (&opts);
}

/* vm id -> state, as the tenant sees them */
static GHashTable *
records (PpnTestFleet *fleet, const gchar *token)
{
	GHashTable *out = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
	guint status = 0;
	g_autoptr(JsonNode) reply = ppn_test_fleet_call (fleet, token, "GET", "/v1/vms?limit=500", NULL, &status, NULL);
	JsonArray *vms;

	g_assert_cmpuint (status, ==, 200);
	vms = json_object_get_array_member (json_node_get_object (reply), "vms");
	for (guint i = 0; i < json_array_get_length (vms); i++) {
		JsonObject *vm = json_array_get_object_element (vms, i);
		g_hash_table_insert (out, g_strdup (json_object_get_string_member (vm, "id")),
				     g_strdup (json_object_get_string_member (vm, "state")));
	}
	return out;
}

/* vm id -> tenant, as the node sees them (from each domain's metadata) */
static GHashTable *
domains (PpnTestFleet *fleet)
{
	GHashTable *out = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
	guint status = 0;
	g_autoptr(JsonNode) reply = ppn_test_agent_call (fleet, "GET", "/agent/v1/domains", NULL, &status);
	JsonArray *doms;

	g_assert_cmpuint (status, ==, 200);
	doms = json_object_get_array_member (json_node_get_object (reply), "domains");
	for (guint i = 0; i < json_array_get_length (doms); i++) {
		JsonObject *d = json_array_get_object_element (doms, i);
		g_hash_table_insert (out, g_strdup (json_object_get_string_member (d, "vm_id")),
				     g_strdup (json_object_get_string_member (d, "tenant")));
	}
	return out;
}

static const gchar *
state_of (PpnTestFleet *fleet, const gchar *token, const gchar *id)
{
	static gchar buf[32];
	g_autoptr(GHashTable) r = records (fleet, token);
	const gchar *st = g_hash_table_lookup (r, id);

	g_strlcpy (buf, st != NULL ? st : "(none)", sizeof buf);
	return buf;
}

static gboolean
wait_state (PpnTestFleet *fleet, const gchar *token, const gchar *id, const gchar *want, guint seconds)
{
	gint64 deadline = g_get_monotonic_time () + (gint64)seconds * G_USEC_PER_SEC;

	while (g_get_monotonic_time () < deadline) {
		if (g_strcmp0 (state_of (fleet, token, id), want) == 0)
			return TRUE;
		g_usleep (200000);
	}
	g_test_message ("VM %s is %s, not %s, after %u s", id, state_of (fleet, token, id), want, seconds);
	return FALSE;
}

static gchar *
create_vm (PpnTestFleet *fleet, const gchar *name)
{
	g_autofree gchar *body = g_strdup_printf ("{\"name\":\"%s\",\"image\":\"test-guest\",\"memory_mib\":64}", name);
	guint status = 0;
	g_autoptr(JsonNode) reply = ppn_test_fleet_call (fleet, fleet->token1, "POST", "/v1/vms", body, &status, NULL);

	g_assert_cmpuint (status, ==, 201);
	return g_strdup (json_object_get_string_member (json_node_get_object (reply), "id"));
}

typedef struct {
	guint done;
	GPtrArray *acknowledged;
} Burst;

static void
burst_cb (GObject *source, GAsyncResult *res, gpointer user_data)
{
	Burst *b = user_data;
	SoupMessage *msg = soup_session_get_async_result_message (SOUP_SESSION (source), res);
	g_autoptr(GBytes) body = soup_session_send_and_read_finish (SOUP_SESSION (source), res, NULL);
	g_autoptr(JsonParser) parser = json_parser_new ();

	b->done++;
	if (body != NULL && soup_message_get_status (msg) == 201 &&
	    json_parser_load_from_data (parser, g_bytes_get_data (body, NULL), (gssize)g_bytes_get_size (body), NULL))
		g_ptr_array_add (b->acknowledged, g_strdup (json_object_get_string_member (
							  json_node_get_object (json_parser_get_root (parser)), "id")));
}

/* the records and the node agree: every domain has a running record of
 * its tenant, every running record a domain, nothing is left pending */
static gboolean
settled (PpnTestFleet *fleet, gboolean verbose)
{
	g_autoptr(GHashTable) r = records (fleet, fleet->token1);
	g_autoptr(GHashTable) d = domains (fleet);
	GHashTableIter iter;
	const gchar *id, *val;
	gboolean ok = TRUE;

	g_hash_table_iter_init (&iter, d);
	while (g_hash_table_iter_next (&iter, (gpointer *)&id, (gpointer *)&val)) {
		if (g_strcmp0 (val, "alice") != 0 || g_strcmp0 (g_hash_table_lookup (r, id), "running") != 0) {
			if (verbose)
				g_test_message ("domain %s (tenant %s) has record state %s", id, val,
						(const gchar *)g_hash_table_lookup (r, id));
			ok = FALSE;
		}
	}
	g_hash_table_iter_init (&iter, r);
	while (g_hash_table_iter_next (&iter, (gpointer *)&id, (gpointer *)&val)) {
		if (g_strcmp0 (val, "running") != 0 || !g_hash_table_contains (d, id)) {
			if (verbose)
				g_test_message ("record %s (%s) has %s domain", id, val,
						g_hash_table_contains (d, id) ? "a" : "no");
			ok = FALSE;
		}
	}
	return ok;
}

/* case 06: kill -9 ppn-fleetd in the middle of 20 concurrent creates */
static void
test_kill_fleet_during_creates (void)
{
	g_autoptr(PpnTestFleet) fleet = start_fleet (15, 3);
	g_autoptr(SoupSession) session = soup_session_new_with_options ("max-conns", 64, "max-conns-per-host", 64,
									"timeout", 60, NULL);
	Burst b = {0, g_ptr_array_new_with_free_func (g_free)};
	g_autoptr(GError) error = NULL;
	g_autofree gchar *auth = g_strconcat ("Bearer ", fleet->token1, NULL);
	gboolean killed = FALSE;
	gint64 deadline;

	soup_session_set_tls_database (session, soup_session_get_tls_database (fleet->session));
	for (guint i = 0; i < 20; i++) {
		g_autofree gchar *url = g_strconcat (fleet->url, "/v1/vms", NULL);
		g_autofree gchar *body = g_strdup_printf ("{\"name\":\"burst%u\",\"image\":\"test-guest\",\"memory_mib\":64}", i);
		g_autoptr(SoupMessage) msg = soup_message_new ("POST", url);
		g_autoptr(GBytes) bytes = g_bytes_new (body, strlen (body));
		soup_message_headers_replace (soup_message_get_request_headers (msg), "Authorization", auth);
		soup_message_set_request_body_from_bytes (msg, "application/json", bytes);
		soup_session_send_and_read_async (session, msg, G_PRIORITY_DEFAULT, NULL, burst_cb, &b);
	}
	while (b.done < 20) {
		g_main_context_iteration (NULL, TRUE);
		if (!killed && b.done >= 3) {
			ppn_test_fleet_stop_fleetd (fleet, SIGKILL);
			killed = TRUE;
		}
	}
	if (!killed)
		ppn_test_fleet_stop_fleetd (fleet, SIGKILL);
	g_test_message ("%u creates acknowledged before the kill", b.acknowledged->len);
	g_assert_cmpuint (b.acknowledged->len, >=, 3);

	ppn_test_fleet_start_fleetd (fleet, &error);
	g_assert_no_error (error);
	ppn_test_fleet_wait_node (fleet, 30, &error);
	g_assert_no_error (error);
	deadline = g_get_monotonic_time () + 30 * G_USEC_PER_SEC;
	while (!settled (fleet, FALSE) && g_get_monotonic_time () < deadline)
		g_usleep (300000);
	g_assert_true (settled (fleet, TRUE));
	{
		/* every acknowledged create is there, running, alice's */
		g_autoptr(GHashTable) r = records (fleet, fleet->token1);
		g_autoptr(GHashTable) other = records (fleet, fleet->token2);
		for (guint i = 0; i < b.acknowledged->len; i++)
			g_assert_cmpstr (g_hash_table_lookup (r, g_ptr_array_index (b.acknowledged, i)), ==, "running");
		g_assert_cmpuint (g_hash_table_size (other), ==, 0);
		g_test_message ("%u VMs after reconciliation", g_hash_table_size (r));
	}
	g_ptr_array_unref (b.acknowledged);
}

/* a node that goes silent: unknown, and back when the node is */
static void
test_silent_node (void)
{
	g_autoptr(PpnTestFleet) fleet = start_fleet (3, 3);
	g_autofree gchar *id = create_vm (fleet, "quiet");
	const gchar *pid = g_subprocess_get_identifier (fleet->agentd);

	g_assert_nonnull (pid);
	kill ((pid_t)g_ascii_strtoll (pid, NULL, 10), SIGSTOP);
	g_assert_true (wait_state (fleet, fleet->token1, id, "unknown", 20));
	/* a silent node is not placed on */
	{
		guint status = 0;
		g_autoptr(JsonNode) r = ppn_test_fleet_call (fleet, fleet->token1, "POST", "/v1/vms",
							     "{\"name\":\"nowhere\",\"image\":\"test-guest\"}", &status, NULL);
		g_assert_cmpuint (status, !=, 201);
	}
	kill ((pid_t)g_ascii_strtoll (pid, NULL, 10), SIGCONT);
	g_assert_true (wait_state (fleet, fleet->token1, id, "running", 20));
}

/* a domain gone behind the fleet's back: lost, then deletable */
static void
test_lost (void)
{
	g_autoptr(PpnTestFleet) fleet = start_fleet (15, 2);
	g_autofree gchar *id = create_vm (fleet, "vanishing");
	g_autofree gchar *agent_path = g_strconcat ("/agent/v1/domains/", id, NULL);
	g_autofree gchar *path = g_strconcat ("/v1/vms/", id, NULL);
	guint status = 0;

	{
		g_autoptr(JsonNode) r = ppn_test_agent_call (fleet, "DELETE", agent_path, NULL, &status);
		g_assert_cmpuint (status, ==, 204);
	}
	g_assert_true (wait_state (fleet, fleet->token1, id, "lost", 20));
	{
		/* still counted, still the tenant's, and deletable */
		g_autoptr(JsonNode) q = ppn_test_fleet_call (fleet, fleet->token1, "GET", "/v1/quota", NULL, &status, NULL);
		g_assert_cmpint (json_object_get_int_member (json_node_get_object (q), "used"), ==, 1);
	}
	{
		g_autoptr(JsonNode) r = ppn_test_fleet_call (fleet, fleet->token1, "DELETE", path, NULL, &status, NULL);
		g_assert_cmpuint (status, ==, 204);
	}
	g_assert_cmpstr (state_of (fleet, fleet->token1, id), ==, "(none)");
}

/* a domain with no record is adopted for the tenant its metadata names;
 * one whose record says deleted is destroyed once everything agrees */
static void
test_adopt_and_reap (void)
{
	g_autoptr(PpnTestFleet) fleet = start_fleet (15, 3);
	const gchar *orphan = "00000000000a0b0c";
	g_autofree gchar *body = g_strdup_printf ("{\"vm_id\":\"%s\",\"tenant\":\"alice\",\"name\":\"stray\","
						  "\"image\":\"test-guest\",\"vcpus\":1,\"memory_mib\":64,"
						  "\"port_forwards\":[]}",
						  orphan);
	g_autofree gchar *bob_body = g_strdup_printf ("{\"vm_id\":\"%s\",\"tenant\":\"bob\",\"name\":\"stray\","
						      "\"image\":\"test-guest\",\"vcpus\":1,\"memory_mib\":64,"
						      "\"port_forwards\":[]}",
						      orphan);
	g_autofree gchar *path = g_strconcat ("/v1/vms/", orphan, NULL);
	guint status = 0;

	{
		g_autoptr(JsonNode) r = ppn_test_agent_call (fleet, "POST", "/agent/v1/domains", body, &status);
		g_assert_cmpuint (status, ==, 201);
	}
	g_assert_true (wait_state (fleet, fleet->token1, orphan, "running", 20));
	g_assert_cmpstr (state_of (fleet, fleet->token2, orphan), ==, "(none)");
	{
		g_autoptr(JsonNode) r = ppn_test_fleet_call (fleet, fleet->token1, "DELETE", path, NULL, &status, NULL);
		g_assert_cmpuint (status, ==, 204);
	}
	/* it comes back on the node: record (deleted), report and metadata
	 * agree, so it is destroyed */
	{
		g_autoptr(JsonNode) r = ppn_test_agent_call (fleet, "POST", "/agent/v1/domains", body, &status);
		g_assert_cmpuint (status, ==, 201);
	}
	{
		gint64 deadline = g_get_monotonic_time () + 20 * G_USEC_PER_SEC;
		gboolean gone = FALSE;
		while (!gone && g_get_monotonic_time () < deadline) {
			g_autoptr(GHashTable) d = domains (fleet);
			gone = !g_hash_table_contains (d, orphan);
			g_usleep (200000);
		}
		g_assert_true (gone);
	}
	g_assert_cmpstr (state_of (fleet, fleet->token1, orphan), ==, "(none)");
	/* the same id for another tenant disagrees with the record: left
	 * alone, and nobody's */
	{
		g_autoptr(JsonNode) r = ppn_test_agent_call (fleet, "POST", "/agent/v1/domains", bob_body, &status);
		g_assert_cmpuint (status, ==, 201);
	}
	g_usleep (3 * G_USEC_PER_SEC);
	{
		g_autoptr(GHashTable) d = domains (fleet);
		g_assert_true (g_hash_table_contains (d, orphan));
	}
	g_assert_cmpstr (state_of (fleet, fleet->token1, orphan), ==, "(none)");
	g_assert_cmpstr (state_of (fleet, fleet->token2, orphan), ==, "(none)");
}

/* a full disk under the store: refused with 503, nothing half-done, and
 * everything works again once there is room */
static void
test_disk_full (void)
{
	PpnTestFleetOptions opts = {.libvirt_uri = "test:///default", .max_vms = 50};
	g_autoptr(GError) error = NULL;
	g_autoptr(PpnTestFleet) fleet = ppn_test_fleet_new (&opts, &error);
	g_autofree gchar *state = g_build_filename (fleet->dir, "fleet", NULL);
	g_autofree gchar *mount = g_strdup_printf ("mount -t tmpfs -o size=4m ppn-test-full '%s'", state);
	g_autofree gchar *fill = g_strdup_printf ("dd if=/dev/zero of='%s/filler' bs=64k 2>/dev/null; sync", state);
	g_autofree gchar *unfill = g_strdup_printf ("rm -f '%s/filler'", state);
	g_autofree gchar *umount = g_strdup_printf ("umount -l '%s'", state);
	g_autofree gchar *id = NULL;
	g_autofree gchar *path = NULL;
	g_autofree gchar *raw = NULL;
	guint status = 0;

	g_assert_no_error (error);
	g_mkdir_with_parents (state, 0700);
	if (!ppn_test_sh (mount)) {
		g_test_skip ("cannot mount a tmpfs here (not root?)");
		return;
	}
	ppn_test_fleet_start (fleet, &error);
	g_assert_no_error (error);
	id = create_vm (fleet, "before");
	path = g_strconcat ("/v1/vms/", id, NULL);

	ppn_test_sh (fill);
	{
		g_autoptr(JsonNode) r = ppn_test_fleet_call (fleet, fleet->token1, "POST", "/v1/vms",
							     "{\"name\":\"during\",\"image\":\"test-guest\"}", &status, &raw);
		g_test_message ("create on a full disk: %u %s", status, raw);
		g_assert_cmpuint (status, ==, 503);
		g_assert_nonnull (strstr (raw, "unavailable"));
	}
	{
		/* the node got nothing */
		g_autoptr(GHashTable) d = domains (fleet);
		g_assert_cmpuint (g_hash_table_size (d), ==, 1);
	}
	{
		/* a delete that cannot be recorded does not happen */
		g_autoptr(JsonNode) r = ppn_test_fleet_call (fleet, fleet->token1, "DELETE", path, NULL, &status, NULL);
		g_autoptr(GHashTable) d = domains (fleet);
		g_assert_cmpuint (status, ==, 503);
		g_assert_true (g_hash_table_contains (d, id));
	}
	ppn_test_sh (unfill);
	{
		g_autofree gchar *after = create_vm (fleet, "after");
		g_autoptr(JsonNode) r = ppn_test_fleet_call (fleet, fleet->token1, "DELETE", path, NULL, &status, NULL);
		g_assert_cmpuint (status, ==, 204);
	}
	ppn_test_fleet_stop_fleetd (fleet, SIGTERM);
	ppn_test_sh (umount);
}

int
main (int argc, char **argv)
{
	g_test_init (&argc, &argv, NULL);
	g_test_add_func ("/reconcile/kill-fleet-during-creates", test_kill_fleet_during_creates);
	g_test_add_func ("/reconcile/silent-node", test_silent_node);
	g_test_add_func ("/reconcile/lost", test_lost);
	g_test_add_func ("/reconcile/adopt-and-reap", test_adopt_and_reap);
	g_test_add_func ("/reconcile/disk-full", test_disk_full);
	return g_test_run ();
}
