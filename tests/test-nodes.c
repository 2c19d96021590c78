/* Many nodes: three real ppn-agentd on libvirt's test driver behind one
 * ppn-fleetd. VMs spread over the nodes, a node killed mid-run gets no
 * new VM once its node-timeout is past while the others keep taking
 * them, and operators (only they) see the nodes with ppnctl node list. */
#include "config.h"

#include <signal.h>
#include <string.h>

#include "ppn-test-util.h"

#define NODE_TIMEOUT_S 3

static JsonObject *
obj (JsonNode *node)
{
	g_assert_nonnull (node);
	g_assert_true (JSON_NODE_HOLDS_OBJECT (node));
	return json_node_get_object (node);
}

/* POST /v1/vms for alice: one small VM with one forward */
static JsonNode *
create (PpnTestFleet *fleet, const gchar *name, const gchar *extra, guint *status, gchar **raw)
{
	g_autofree gchar *body = g_strdup_printf ("{\"name\":\"%s\",\"image\":\"test-guest\",\"memory_mib\":64,"
						  "\"port_forwards\":[{\"guest_port\":80}]%s}",
						  name, extra != NULL ? extra : "");

	return ppn_test_fleet_call (fleet, fleet->token1, "POST", "/v1/vms", body, status, raw);
}

static JsonNode *
list_nodes (PpnTestFleet *fleet)
{
	guint status = 0;
	JsonNode *nodes = ppn_test_fleet_mesh_call (fleet, PPN_TLS_ROLE_OPERATOR, "ops", "GET", "/mesh/v1/nodes",
						    &status);

	g_assert_cmpuint (status, ==, 200);
	return nodes;
}

static guint
quota_used (PpnTestFleet *fleet)
{
	guint status = 0;
	g_autoptr(JsonNode) quota = ppn_test_fleet_call (fleet, fleet->token1, "GET", "/v1/quota", NULL, &status, NULL);

	g_assert_cmpuint (status, ==, 200);
	return (guint)json_object_get_int_member (obj (quota), "used");
}

/* the port range of the agent that runs @node_id */
static void
node_range (PpnTestFleet *fleet, const gchar *node_id, guint16 *first, guint16 *last)
{
	if (g_strcmp0 (node_id, fleet->node_id) == 0) {
		*first = fleet->port_first;
		*last = fleet->port_last;
		return;
	}
	for (guint i = 0; i < fleet->agents->len; i++) {
		PpnTestAgent *agent = g_ptr_array_index (fleet->agents, i);
		if (g_strcmp0 (node_id, agent->node_id) == 0) {
			*first = agent->port_first;
			*last = agent->port_last;
			return;
		}
	}
	g_error ("VM placed on unknown node %s", node_id);
}

/* a 201's node, checked: its host port is from that node's own range */
static const gchar *
created_on (PpnTestFleet *fleet, JsonNode *vm)
{
	const gchar *node = json_object_get_string_member (obj (vm), "node");
	JsonObject *fwd = json_array_get_object_element (json_object_get_array_member (obj (vm), "port_forwards"), 0);
	gint64 port = json_object_get_int_member (fwd, "host_port");
	guint16 first = 0, last = 0;

	node_range (fleet, node, &first, &last);
	if (port < first || port > last)
		g_error ("VM on %s has host port %" G_GINT64_FORMAT ", outside its range %u-%u", node, port, first,
			 last);
	return node;
}

static void
count_on (GHashTable *counts, const gchar *node)
{
	g_hash_table_insert (counts, g_strdup (node),
			     GUINT_TO_POINTER (GPOINTER_TO_UINT (g_hash_table_lookup (counts, node)) + 1));
}

/* a create that must succeed, counted on its node; never on @not_on */
static void
create_counted (PpnTestFleet *fleet, guint n, GHashTable *counts, const gchar *not_on)
{
	g_autofree gchar *name = g_strdup_printf ("vm%u", n);
	g_autofree gchar *raw = NULL;
	guint status = 0;
	g_autoptr(JsonNode) vm = create (fleet, name, NULL, &status, &raw);
	const gchar *node;

	if (status != 201)
		g_error ("create %s: expected 201, got %u: %s", name, status, raw);
	node = created_on (fleet, vm);
	g_assert_cmpstr (node, !=, not_on);
	count_on (counts, node);
}

static guint
count_of (GHashTable *counts, const gchar *node)
{
	return GPOINTER_TO_UINT (g_hash_table_lookup (counts, node));
}

/* every reservation is reported by its node within a heartbeat or two, or
 * was released: none is left behind */
static void
assert_nothing_reserved (PpnTestFleet *fleet)
{
	gint64 deadline = g_get_monotonic_time () + 5 * G_USEC_PER_SEC;

	for (;;) {
		g_autoptr(JsonNode) nodes = list_nodes (fleet);
		JsonArray *list = json_object_get_array_member (obj (nodes), "nodes");
		const gchar *holding = NULL;
		gint64 held = 0;

		for (guint i = 0; i < json_array_get_length (list) && holding == NULL; i++) {
			JsonObject *node = json_array_get_object_element (list, i);
			held = json_object_get_int_member (node, "reserved");
			if (held != 0)
				holding = json_object_get_string_member (node, "id");
		}
		if (holding == NULL)
			return;
		if (g_get_monotonic_time () > deadline)
			g_error ("node %s still holds %" G_GINT64_FORMAT " reservations", holding, held);
		g_usleep (250 * 1000);
	}
}

static void
test_spread_and_dead_node (void)
{
	PpnTestFleetOptions opts = {.libvirt_uri = "test:///default", .max_vms = 40, .agent_count = 3,
				    .node_timeout = NODE_TIMEOUT_S};
	g_autoptr(PpnTestFleet) fleet = ppn_test_fleet_new_started (&opts);
	g_autoptr(GHashTable) counts = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
	const gchar *ids[3];
	PpnTestAgent *victim;
	guint created = 0, refused = 0, n = 0;
	gint64 killed_at, silent_at = 0;

	g_assert_cmpuint (fleet->agents->len, ==, 2);
	ids[0] = fleet->node_id;
	ids[1] = ((PpnTestAgent *)g_ptr_array_index (fleet->agents, 0))->node_id;
	ids[2] = ((PpnTestAgent *)g_ptr_array_index (fleet->agents, 1))->node_id;
	victim = g_ptr_array_index (fleet->agents, 1);

	/* every node registered with its capacity, from its heartbeats */
	{
		g_autoptr(JsonNode) nodes = list_nodes (fleet);
		for (guint i = 0; i < 3; i++) {
			JsonObject *node = ppn_test_fleet_find_node (nodes, ids[i]);
			g_assert_nonnull (node);
			g_assert_cmpstr (json_object_get_string_member (node, "state"), ==, "alive");
			g_assert_cmpstr (json_object_get_string_member (node, "accel"), ==, "tcg");
			g_assert_cmpint (json_object_get_int_member (node, "vcpus"), ==, 64);
			g_assert_cmpint (json_object_get_int_member (node, "memory_mib"), ==, 32768);
			g_assert_cmpint (json_object_get_int_member (node, "vms"), ==, 0);
		}
	}

	/* spread: six VMs on three equal nodes, two each */
	for (guint i = 0; i < 6; i++, created++)
		create_counted (fleet, n++, counts, NULL);
	for (guint i = 0; i < 3; i++) {
		g_test_message ("node %s: %u VMs", ids[i], count_of (counts, ids[i]));
		g_assert_cmpuint (count_of (counts, ids[i]), ==, 2);
	}
	{
		/* what the nodes report is what was placed, counted once */
		g_autoptr(JsonNode) nodes = NULL;
		g_usleep (1500 * 1000); /* a heartbeat of each */
		nodes = list_nodes (fleet);
		for (guint i = 0; i < 3; i++) {
			JsonObject *node = ppn_test_fleet_find_node (nodes, ids[i]);
			g_assert_cmpint (json_object_get_int_member (node, "vms"), ==, 2);
			g_assert_cmpint (json_object_get_int_member (node, "reserved"), ==, 0);
			g_assert_cmpint (json_object_get_int_member (node, "used_vcpus"), ==, 2);
			g_assert_cmpint (json_object_get_int_member (node, "used_memory_mib"), ==, 128);
			g_assert_cmpint (json_object_get_int_member (node, "free_ports"), ==, i == 0 ? 48 : 18);
		}
	}

	/* one node dies; the one create placed there before the fleet
	 * notices fails (503, nothing kept); afterwards none goes there,
	 * long before node-timeout marks it silent */
	ppn_test_agent_stop (victim, SIGKILL);
	killed_at = g_get_monotonic_time ();
	while (silent_at == 0 || g_get_monotonic_time () - silent_at < 2 * G_USEC_PER_SEC) {
		g_autofree gchar *name = g_strdup_printf ("vm%u", n++);
		g_autofree gchar *raw = NULL;
		guint status = 0;
		g_autoptr(JsonNode) vm = create (fleet, name, NULL, &status, &raw);
		g_autoptr(JsonNode) nodes = list_nodes (fleet);
		gboolean was_silent = silent_at != 0;

		if (status == 201) {
			const gchar *node = created_on (fleet, vm);
			g_assert_cmpstr (node, !=, victim->node_id);
			count_on (counts, node);
			created++;
		} else {
			g_test_message ("create during the timeout: %u %s", status, raw);
			g_assert_cmpuint (status, ==, 503);
			g_assert_false (was_silent);
			refused++;
		}
		if (silent_at == 0 &&
		    g_strcmp0 (json_object_get_string_member (ppn_test_fleet_find_node (nodes, victim->node_id), "state"),
			       "silent") == 0) {
			silent_at = g_get_monotonic_time ();
			g_test_message ("node %s silent after %.1f s", victim->node_id, (silent_at - killed_at) / 1e6);
		}
		g_assert_cmpint (g_get_monotonic_time () - killed_at, <, (NODE_TIMEOUT_S + 10) * G_USEC_PER_SEC);
		g_usleep (200 * 1000);
	}
	g_test_message ("%u creates refused while the dead node still counted as alive", refused);
	/* the first create that finds it dead is the last one sent there */
	g_assert_cmpuint (refused, <=, 1);
	g_assert_cmpuint ((silent_at - killed_at) / G_USEC_PER_SEC, >=, NODE_TIMEOUT_S - 1);

	/* the two live nodes share the rest evenly */
	for (guint i = 0; i < 6; i++, created++)
		create_counted (fleet, n++, counts, victim->node_id);
	g_test_message ("VMs: %s %u, %s %u, %s %u (dead)", ids[0], count_of (counts, ids[0]), ids[1],
			count_of (counts, ids[1]), ids[2], count_of (counts, ids[2]));
	g_assert_cmpuint (count_of (counts, victim->node_id), ==, 2);
	g_assert_cmpuint (MAX (count_of (counts, ids[0]), count_of (counts, ids[1])) -
				  MIN (count_of (counts, ids[0]), count_of (counts, ids[1])),
			  <=, 1);

	/* the failed creates kept no slot and no room */
	g_assert_cmpuint (quota_used (fleet), ==, created);
	assert_nothing_reserved (fleet);

	/* a requirement nobody meets: 503 no_capacity, saying which */
	{
		g_autofree gchar *raw = NULL;
		guint status = 0;
		g_autoptr(JsonNode) answer = create (fleet, "needs-kvm", ",\"accel\":\"kvm\"", &status, &raw);
		JsonObject *err;
		g_assert_cmpuint (status, ==, 503);
		err = json_object_get_object_member (obj (answer), "error");
		g_assert_cmpstr (json_object_get_string_member (err, "code"), ==, "no_capacity");
		g_test_message ("%s", json_object_get_string_member (err, "message"));
		g_assert_nonnull (strstr (json_object_get_string_member (err, "message"), "accel"));
		g_assert_cmpuint (quota_used (fleet), ==, created);
		assert_nothing_reserved (fleet);
	}
	{
		/* tcg is what they all offer */
		guint status = 0;
		g_autoptr(JsonNode) vm = create (fleet, "needs-tcg", ",\"accel\":\"tcg\"", &status, NULL);
		g_assert_cmpuint (status, ==, 201);
		g_assert_cmpstr (created_on (fleet, vm), !=, victim->node_id);
	}
}

/* ---- ppnctl node list ---------------------------------------------------- */

static gint
run_ppnctl (PpnTestFleet *fleet, const gchar *cert_role, gchar **out, gchar **err, ...) G_GNUC_NULL_TERMINATED;
static gint
run_ppnctl (PpnTestFleet *fleet, const gchar *cert_role, gchar **out, gchar **err, ...)
{
	g_autoptr(GSubprocessLauncher) launcher =
		g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE | G_SUBPROCESS_FLAGS_STDERR_PIPE);
	g_autoptr(GPtrArray) argv = g_ptr_array_new_with_free_func (g_free);
	g_autoptr(GSubprocess) proc = NULL;
	g_autoptr(GError) error = NULL;
	g_autofree gchar *mesh_url = g_strdup_printf ("https://127.0.0.1:%u", fleet->mesh_port);
	g_autofree gchar *ca = g_build_filename (fleet->ca_dir, "ca.pem", NULL);
	va_list ap;

	g_subprocess_launcher_setenv (launcher, "LC_ALL", "C.UTF-8", TRUE);
	g_subprocess_launcher_setenv (launcher, "PPN_MESH_URL", mesh_url, TRUE);
	g_subprocess_launcher_setenv (launcher, "PPN_CA", ca, TRUE);
	g_subprocess_launcher_setenv (launcher, "PPN_TOKEN", fleet->token1, TRUE);
	g_subprocess_launcher_unsetenv (launcher, "PPN_CERT");
	g_subprocess_launcher_unsetenv (launcher, "PPN_KEY");
	g_ptr_array_add (argv, ppn_test_build_path ("ppnctl"));
	va_start (ap, err);
	for (const gchar *a = va_arg (ap, const gchar *); a != NULL; a = va_arg (ap, const gchar *))
		g_ptr_array_add (argv, g_strdup (a));
	va_end (ap);
	if (cert_role != NULL) {
		g_autofree gchar *cert = NULL;
		g_autofree gchar *key = NULL;
		if (g_strcmp0 (cert_role, "agent") == 0) {
			/* the first node's own */
			cert = g_build_filename (fleet->dir, "agent.pem", NULL);
			key = g_build_filename (fleet->dir, "agent-key.pem", NULL);
		} else {
			ppn_test_fleet_issue (fleet, ppn_tls_role_from_string (cert_role), "ops", &cert, &key, &error);
			g_assert_no_error (error);
		}
		g_subprocess_launcher_setenv (launcher, "PPN_CERT", cert, TRUE);
		g_subprocess_launcher_setenv (launcher, "PPN_KEY", key, TRUE);
	}
	g_ptr_array_add (argv, NULL);
	proc = g_subprocess_launcher_spawnv (launcher, (const gchar *const *)argv->pdata, &error);
	g_assert_no_error (error);
	g_subprocess_communicate_utf8 (proc, NULL, NULL, out, err, &error);
	g_assert_no_error (error);
	g_assert_true (g_subprocess_get_if_exited (proc));
	g_test_message ("ppnctl (%s): exit %d\n%s%s", cert_role != NULL ? cert_role : "no certificate",
			g_subprocess_get_exit_status (proc), *out, *err);
	return g_subprocess_get_exit_status (proc);
}

static void
test_node_list (void)
{
	PpnTestFleetOptions opts = {.libvirt_uri = "test:///default", .max_vms = 4, .agent_count = 2};
	g_autoptr(PpnTestFleet) fleet = ppn_test_fleet_new_started (&opts);
	PpnTestAgent *second = g_ptr_array_index (fleet->agents, 0);
	guint status = 0;

	/* an operator: a table of both nodes, and the same in JSON */
	{
		g_autofree gchar *out = NULL;
		g_autofree gchar *err = NULL;
		g_autofree gchar *json_out = NULL;
		g_autofree gchar *json_err = NULL;
		g_autoptr(JsonParser) parser = json_parser_new ();
		g_autoptr(JsonNode) created = NULL;
		JsonObject *node;

		created = create (fleet, "listed", NULL, &status, NULL);
		g_assert_cmpuint (status, ==, 201);
		g_usleep (1500 * 1000); /* reported by its node */
		g_assert_cmpint (run_ppnctl (fleet, "operator", &out, &err, "node", "list", NULL), ==, 0);
		g_assert_true (g_str_has_prefix (out, "NODE "));
		g_assert_nonnull (strstr (out, "HEARTBEAT"));
		g_assert_nonnull (strstr (out, fleet->node_id));
		g_assert_nonnull (strstr (out, second->node_id));
		g_assert_nonnull (strstr (out, " alive "));
		g_assert_nonnull (strstr (out, "s ago"));
		g_assert_nonnull (strstr (out, "1/64"));
		g_assert_cmpint (run_ppnctl (fleet, "operator", &json_out, &json_err, "--json", "node", "list", NULL), ==,
				 0);
		g_assert_true (json_parser_load_from_data (parser, json_out, -1, NULL));
		node = ppn_test_fleet_find_node (json_parser_get_root (parser), second->node_id);
		g_assert_nonnull (node);
		g_assert_true (json_object_get_boolean_member (node, "alive"));
		/* its 20 host ports, less one for each VM's forward */
		g_assert_cmpint (json_object_get_int_member (node, "free_ports") + json_object_get_int_member (node, "vms"),
				 ==, 20);
		node = ppn_test_fleet_find_node (json_parser_get_root (parser),
						 json_object_get_string_member (obj (created), "node"));
		g_assert_cmpint (json_object_get_int_member (node, "vms"), ==, 1);
	}
	/* an agent's or the fleet's certificate: 403 (exit 5) */
	{
		g_autofree gchar *out = NULL;
		g_autofree gchar *err = NULL;
		g_assert_cmpint (run_ppnctl (fleet, "agent", &out, &err, "node", "list", NULL), ==, 5);
		g_assert_nonnull (strstr (err, "Only operators"));
	}
	{
		g_autofree gchar *out = NULL;
		g_autofree gchar *err = NULL;
		g_assert_cmpint (run_ppnctl (fleet, "fleet", &out, &err, "node", "list", NULL), ==, 5);
	}
	/* no certificate: a usage error, nothing sent */
	{
		g_autofree gchar *out = NULL;
		g_autofree gchar *err = NULL;
		g_assert_cmpint (run_ppnctl (fleet, NULL, &out, &err, "node", "list", NULL), ==, 2);
		g_assert_nonnull (strstr (err, "operator certificate"));
	}
	/* a tenant has a token and no certificate: the mesh refuses the
	 * handshake, and the tenant API has no such path */
	{
		g_autoptr(JsonNode) none = ppn_test_fleet_mesh_call (fleet, PPN_TLS_ROLE_UNKNOWN, NULL, "GET",
								     "/mesh/v1/nodes", &status);
		g_assert_cmpuint (status, ==, 0);
	}
	{
		g_autoptr(JsonNode) tenant = ppn_test_fleet_call (fleet, fleet->token1, "GET", "/mesh/v1/nodes", NULL,
								  &status, NULL);
		g_assert_cmpuint (status, ==, 404);
	}
	/* the endpoints keep their roles and methods */
	{
		g_autoptr(JsonNode) a = ppn_test_fleet_mesh_call (fleet, PPN_TLS_ROLE_AGENT, second->node_id, "GET",
								  "/mesh/v1/nodes", &status);
		g_assert_cmpuint (status, ==, 403);
	}
	{
		g_autoptr(JsonNode) a = ppn_test_fleet_mesh_call (fleet, PPN_TLS_ROLE_OPERATOR, "ops", "POST",
								  "/mesh/v1/nodes", &status);
		g_assert_cmpuint (status, ==, 405);
	}
	{
		g_autoptr(JsonNode) a = ppn_test_fleet_mesh_call (fleet, PPN_TLS_ROLE_OPERATOR, "ops", "POST",
								  "/mesh/v1/heartbeat", &status);
		g_assert_cmpuint (status, ==, 403);
	}
}

/* the value of the sample @series ('name{labels}') in a scrape, -1 if absent */
static gdouble
sample (const gchar *text, const gchar *series)
{
	g_autofree gchar *needle = g_strconcat ("\n", series, " ", NULL);
	const gchar *at = strstr (text, needle);

	return at != NULL ? g_ascii_strtod (at + strlen (needle), NULL) : -1;
}

/* Prometheus text on the mesh listener, for operators only, counting what
 * happened: requests by route and status, VMs by state, nodes, the gate,
 * the audit trail */
static void
test_metrics (void)
{
	PpnTestFleetOptions opts = {.libvirt_uri = "test:///default", .max_vms = 5};
	g_autoptr(PpnTestFleet) fleet = ppn_test_fleet_new_started (&opts);
	g_autofree gchar *text = NULL;
	guint status = 0;

	for (guint i = 0; i < 2; i++) {
		g_autofree gchar *body = g_strdup_printf ("{\"name\":\"m%u\",\"image\":\"test-guest\"}", i);
		g_autoptr(JsonNode) r = ppn_test_fleet_call (fleet, fleet->token1, "POST", "/v1/vms", body, &status, NULL);
		g_assert_cmpuint (status, ==, 201);
	}
	{
		g_autoptr(JsonNode) r = ppn_test_fleet_call (fleet, "wrong", "GET", "/v1/vms", NULL, &status, NULL);
		g_assert_cmpuint (status, ==, 401);
	}
	g_free (ppn_test_fleet_mesh_get_text (fleet, PPN_TLS_ROLE_AGENT, "someone", "/metrics", &status));
	g_assert_cmpuint (status, ==, 403);
	text = ppn_test_fleet_mesh_get_text (fleet, PPN_TLS_ROLE_OPERATOR, "prometheus", "/metrics", &status);
	g_assert_cmpuint (status, ==, 200);
	g_test_message ("%s", text);
	g_assert_true (g_str_has_prefix (text, "# HELP "));
	g_assert_cmpfloat (
		sample (text, "ppn_http_requests_total{listener=\"tenant\",method=\"POST\",route=\"/v1/vms\",status=\"201\"}"),
		==, 2);
	g_assert_cmpfloat (
		sample (text, "ppn_http_requests_total{listener=\"tenant\",method=\"GET\",route=\"/v1/vms\",status=\"401\"}"),
		==, 1);
	g_assert_cmpfloat (
		sample (text, "ppn_http_request_duration_seconds_count{listener=\"tenant\",route=\"/v1/vms\"}"), ==, 3);
	g_assert_cmpfloat (sample (text, "ppn_http_request_duration_seconds_count{listener=\"mesh\",route=\"/mesh/v1/heartbeat\"}"),
			   >=, 1);
	g_assert_cmpfloat (sample (text, "ppn_vms{state=\"running\"}"), ==, 2);
	g_assert_cmpfloat (sample (text, "ppn_vms{state=\"pending\"}"), ==, 0);
	g_assert_cmpfloat (sample (text, "ppn_nodes{state=\"alive\"}"), ==, 1);
	g_assert_cmpfloat (sample (text, "ppn_capacity_vcpus{kind=\"used\"}"), ==, 2);
	g_assert_cmpfloat (sample (text, "ppn_gate_inflight_total"), ==, 0);
	g_assert_cmpfloat (sample (text, "ppn_placement_duration_seconds_count"), ==, 2);
	g_assert_cmpfloat (sample (text, "ppn_heartbeat_processing_seconds_count"), >=, 1);
	/* two creates (intent and outcome each) and one refused login */
	g_assert_cmpfloat (sample (text, "ppn_audit_records_total"), ==, 5);
	g_assert_cmpfloat (sample (text, "ppn_audit_healthy"), ==, 1);
	g_assert_cmpfloat (sample (text, "ppn_audit_commit_duration_seconds_count"), >=, 1);
}

int
main (int argc, char **argv)
{
	g_test_init (&argc, &argv, NULL);
	g_test_add_func ("/nodes/spread-and-dead-node", test_spread_and_dead_node);
	g_test_add_func ("/nodes/node-list", test_node_list);
	g_test_add_func ("/nodes/metrics", test_metrics);
	return g_test_run ();
}
