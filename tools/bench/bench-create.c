/* bench-create: what ppn adds to starting a VM.
 *
 * Starts a fleet (ppn-fleetd + one ppn-agentd on qemu:///system, TCG)
 * from the build tree, then N times: POST /v1/vms -> 201, and on to the
 * guest answering on its forwarded port; DELETE. As the reference, the
 * very domain XML ppn generated (taken with virsh dumpxml, renamed) is
 * started N times with virDomainCreateXML() on a connection opened once
 * (as the agent holds one), timed to its return and to the guest
 * answering; with --virsh also with `virsh create` (a process and a
 * connection each time). Runs alternate, ppn then reference, so that
 * drift of the machine hits both. Prints medians and p95 side by side,
 * and where ppn's time goes: the fleet's and the agent's own logged
 * times (debug level) split the client's into TLS + HTTP, the fleet
 * (gate, store, placement, the mutual-TLS call), and the agent's
 * create, of which the domain start is the reference's figure.
 *
 *   tools/bench/bench-create [-n RUNS] [--virsh]
 */
#include "config.h"

#include <gio/gio.h>
#include <libvirt/libvirt.h>
#include <string.h>

#include "bench-util.h"

static gint runs = 20;
static gboolean with_virsh = FALSE;

#define percentile ppn_bench_percentile

/* ms from @t0 until GET / on @port answers @expect */
static gdouble
wait_answer (guint16 port, const gchar *expect, gint64 t0)
{
	while (g_get_monotonic_time () - t0 < 180 * G_USEC_PER_SEC) {
		g_autofree gchar *got = ppn_test_http_get (port, NULL);
		if (g_strcmp0 (got, expect) == 0)
			return (g_get_monotonic_time () - t0) / 1000.0;
		g_usleep (20000);
	}
	g_error ("guest %s on port %u did not answer", expect, port);
	return 0;
}

static gchar *
run (const gchar *const *argv)
{
	gint status = -1;
	g_autofree gchar *out = ppn_test_run (argv, &status);

	if (!g_spawn_check_wait_status (status, NULL))
		g_error ("%s failed", argv[0]);
	return g_steal_pointer (&out);
}

static gchar *
replace_all (const gchar *s, const gchar *from, const gchar *to)
{
	g_auto(GStrv) parts = g_strsplit (s, from, -1);
	return g_strjoinv (to, parts);
}

/* the generated XML, made into another domain: new name and vm id, a
 * different host port, no uuid (libvirt picks one) */
static gchar *
reference_xml (const gchar *xml, const gchar *id, const gchar *new_id, guint16 port, guint16 new_port)
{
	g_autofree gchar *a = replace_all (xml, id, new_id);
	g_autofree gchar *from = g_strdup_printf ("127.0.0.1:%u-", port);
	g_autofree gchar *to = g_strdup_printf ("127.0.0.1:%u-", new_port);
	g_autofree gchar *b = replace_all (a, from, to);
	const gchar *u0 = strstr (b, "<uuid>");
	const gchar *u1 = u0 != NULL ? strstr (u0, "</uuid>") : NULL;
	GString *out = g_string_new (NULL);

	if (u0 == NULL || u1 == NULL)
		return g_strdup (b);
	g_string_append_len (out, b, u0 - b);
	g_string_append (out, u1 + strlen ("</uuid>"));
	return g_string_free (out, FALSE);
}

/* the number after @needle in the last line of @log_name holding it
 * (and @also, if given), or -1 */
static gdouble
log_figure (PpnTestFleet *fleet, const gchar *log_name, const gchar *needle, const gchar *also)
{
	g_autofree gchar *path = g_build_filename (fleet->dir, log_name, NULL);
	g_autofree gchar *log = NULL;
	g_auto(GStrv) lines = NULL;

	if (!g_file_get_contents (path, &log, NULL, NULL))
		return -1;
	lines = g_strsplit (log, "\n", -1);
	for (gint i = (gint)g_strv_length (lines) - 1; i >= 0; i--) {
		const gchar *hit = strstr (lines[i], needle);
		if (hit != NULL && (also == NULL || strstr (lines[i], also) != NULL))
			return g_ascii_strtod (hit + strlen (needle), NULL);
	}
	return -1;
}

typedef struct {
	const gchar *label;
	GArray *a, *b; /* ppn, reference; b may be NULL */
} Row;

static void
print_row (const Row *row)
{
	gdouble a = percentile (row->a, 0.5);

	if (row->b == NULL) {
		g_print ("%-44s %10.0f %10.0f %10s %10s %8s\n", row->label, a, percentile (row->a, 0.95), "", "",
			 "");
		return;
	}
	g_print ("%-44s %10.0f %10.0f %10.0f %10.0f %8.2f\n", row->label, a, percentile (row->a, 0.95),
		 percentile (row->b, 0.5), percentile (row->b, 0.95), a / percentile (row->b, 0.5));
}

static GArray *
sample (void)
{
	return g_array_new (FALSE, FALSE, sizeof (gdouble));
}

int
main (int argc, char **argv)
{
	const GOptionEntry entries[] = {
		{"runs", 'n', 0, G_OPTION_ARG_INT, &runs, "Runs of each (default 20)", "N"},
		{"virsh", 0, 0, G_OPTION_ARG_NONE, &with_virsh, "Also time `virsh create`", NULL},
		{NULL},
	};
	g_autoptr(GOptionContext) ctx = g_option_context_new (NULL);
	g_autoptr(GError) error = NULL;
	PpnTestFleetOptions opts = {.libvirt_uri = "qemu:///system", .real_guest = TRUE, .max_vms = 1000};
	g_autoptr(PpnTestFleet) fleet = NULL;
	g_autoptr(GArray) api_201 = sample ();
	g_autoptr(GArray) api_answer = sample ();
	g_autoptr(GArray) api_tls = sample ();	  /* client's 201 minus the fleet's own time */
	g_autoptr(GArray) api_fleet = sample ();  /* the fleet's time minus the agent's create */
	g_autoptr(GArray) api_agent = sample ();  /* the agent's logged create */
	g_autoptr(GArray) api_boot = sample ();	  /* 201 to the guest answering */
	g_autoptr(GArray) ref_ret = sample ();
	g_autoptr(GArray) ref_answer = sample ();
	g_autoptr(GArray) ref_boot = sample ();
	g_autoptr(GArray) virsh_ret = sample ();
	g_autoptr(GArray) virsh_answer = sample ();
	virConnectPtr conn = NULL;
	g_autofree gchar *xml = NULL;
	g_autofree gchar *xml_id = NULL;
	guint16 xml_port = 0;

	g_option_context_add_main_entries (ctx, entries, NULL);
	if (!g_option_context_parse (ctx, &argc, &argv, &error) || runs < 1) {
		g_printerr ("bench-create: %s\n", error != NULL ? error->message : "bad --runs");
		return 2;
	}
	if (!ppn_test_libvirt_available ("qemu:///system")) {
		g_printerr ("bench-create: qemu:///system is not reachable (start libvirtd)\n");
		return 1;
	}
	ppn_bench_print_machine ();
	g_print ("guest: test-guest (Debian cloud kernel + busybox), TCG, 1 vCPU, 256 MiB\n\n");
	conn = virConnectOpen ("qemu:///system");
	if (conn == NULL) {
		g_printerr ("bench-create: cannot open qemu:///system\n");
		return 1;
	}
	fleet = ppn_test_fleet_new (&opts, &error);
	if (fleet == NULL || !ppn_test_fleet_start (fleet, &error)) {
		g_printerr ("bench-create: %s\n", error->message);
		return 1;
	}

	for (gint i = 0; i < runs; i++) {
		g_autofree gchar *name = g_strdup_printf ("bench%d", i);
		g_autofree gchar *body = g_strdup_printf (
			"{\"name\":\"%s\",\"image\":\"test-guest\",\"vcpus\":1,\"memory_mib\":256,"
			"\"port_forwards\":[{\"guest_port\":80}]}",
			name);
		g_autofree gchar *raw = NULL;
		g_autofree gchar *path = NULL;
		g_autofree gchar *dom_name = NULL;
		guint status = 0;
		gint64 t0 = g_get_monotonic_time ();
		g_autoptr(JsonNode) vm = ppn_test_fleet_call (fleet, fleet->token1, "POST", "/v1/vms", body, &status, &raw);
		gdouble t201 = (g_get_monotonic_time () - t0) / 1000.0, tans, fleet_ms, agent_ms;
		JsonObject *o;
		const gchar *id;
		guint16 port;

		if (status != 201)
			g_error ("create: %u %s", status, raw);
		o = json_node_get_object (vm);
		id = json_object_get_string_member (o, "id");
		port = (guint16)json_object_get_int_member (
			json_array_get_object_element (json_object_get_array_member (o, "port_forwards"), 0), "host_port");
		tans = wait_answer (port, id, t0);
		dom_name = g_strconcat ("ppn-", id, NULL);
		/* the daemons' own figures: the proxy's request line, the agent's create */
		fleet_ms = log_figure (fleet, "fleetd.log", "POST /v1/vms -> 201 tenant=alice ", NULL);
		agent_ms = log_figure (fleet, "agentd.log", " in ", dom_name) * 1000.0;
		g_array_append_val (api_201, t201);
		g_array_append_val (api_answer, tans);
		{
			gdouble tls = t201 - fleet_ms, in_fleet = fleet_ms - agent_ms, boot = tans - t201;
			g_array_append_val (api_tls, tls);
			g_array_append_val (api_fleet, in_fleet);
			g_array_append_val (api_agent, agent_ms);
			g_array_append_val (api_boot, boot);
		}
		if (xml == NULL) {
			const gchar *argv_dump[] = {"virsh", "-c", "qemu:///system", "dumpxml", "--inactive", dom_name, NULL};
			xml = run (argv_dump);
			xml_id = g_strdup (id);
			xml_port = port;
		}
		path = g_strconcat ("/v1/vms/", id, NULL);
		g_clear_pointer (&vm, json_node_unref);
		vm = ppn_test_fleet_call (fleet, fleet->token1, "DELETE", path, NULL, &status, NULL);
		if (status != 204)
			g_error ("delete: %u", status);
		g_printerr ("api run %d: 201 after %.0f ms (fleet %.0f, agent %.0f), answer after %.0f ms\n", i, t201,
			    fleet_ms, agent_ms, tans);

		/* the reference: the same XML, renamed, through the C API */
		{
			g_autofree gchar *new_id = g_strdup_printf ("%016x", 0xbe0c0000u + (guint)i);
			guint16 new_port = (guint16)(fleet->port_last - 1);
			g_autofree gchar *ref0 = reference_xml (xml, xml_id, new_id, xml_port, new_port);
			/* another node's domain to the agent, so it neither reports
			 * nor adopts it */
			g_autofree gchar *ref = replace_all (ref0, fleet->node_id, "bench-reference");
			virDomainPtr dom;
			gint64 r0 = g_get_monotonic_time ();
			gdouble tret, rans, rboot;

			dom = virDomainCreateXML (conn, ref, VIR_DOMAIN_START_VALIDATE);
			if (dom == NULL)
				g_error ("virDomainCreateXML failed");
			tret = (g_get_monotonic_time () - r0) / 1000.0;
			rans = wait_answer (new_port, new_id, r0);
			rboot = rans - tret;
			g_array_append_val (ref_ret, tret);
			g_array_append_val (ref_answer, rans);
			g_array_append_val (ref_boot, rboot);
			virDomainDestroy (dom);
			virDomainFree (dom);
			g_printerr ("virDomainCreateXML run %d: returned after %.0f ms, answer after %.0f ms\n", i, tret,
				    rans);
		}
		if (with_virsh) {
			g_autofree gchar *new_id = g_strdup_printf ("%016x", 0xbe0d0000u + (guint)i);
			guint16 new_port = (guint16)(fleet->port_last - 1);
			g_autofree gchar *ref0 = reference_xml (xml, xml_id, new_id, xml_port, new_port);
			g_autofree gchar *ref = replace_all (ref0, fleet->node_id, "bench-reference");
			g_autofree gchar *file = g_build_filename (fleet->dir, "reference.xml", NULL);
			g_autofree gchar *dom = g_strconcat ("ppn-", new_id, NULL);
			const gchar *argv_create[] = {"virsh", "-q", "-c", "qemu:///system", "create", file, NULL};
			const gchar *argv_destroy[] = {"virsh", "-q", "-c", "qemu:///system", "destroy", dom, NULL};
			g_autofree gchar *out = NULL;
			g_autofree gchar *out2 = NULL;
			gint64 r0;
			gdouble tret, rans;

			g_file_set_contents (file, ref, -1, &error);
			g_assert_no_error (error);
			r0 = g_get_monotonic_time ();
			out = run (argv_create);
			tret = (g_get_monotonic_time () - r0) / 1000.0;
			rans = wait_answer (new_port, new_id, r0);
			g_array_append_val (virsh_ret, tret);
			g_array_append_val (virsh_answer, rans);
			out2 = run (argv_destroy);
			g_printerr ("virsh run %d: returned after %.0f ms, answer after %.0f ms\n", i, tret, rans);
		}
	}

	g_print ("%-44s %10s %10s %10s %10s %8s\n", "step (ms)", "ppn med", "ppn p95", "ref med", "ref p95", "ratio");
	{
		const Row rows[] = {
			{"POST /v1/vms -> 201 | virDomainCreateXML", api_201, ref_ret},
			{"  ppn: client TLS+HTTP (client - fleet log)", api_tls, NULL},
			{"  ppn: in fleet (fleet log - agent create)", api_fleet, NULL},
			{"  ppn: agent create | virDomainCreateXML", api_agent, ref_ret},
			{"201 | return -> guest answers (boot)", api_boot, ref_boot},
			{"request -> guest answers on its port", api_answer, ref_answer},
		};
		for (guint r = 0; r < G_N_ELEMENTS (rows); r++)
			print_row (&rows[r]);
		if (with_virsh) {
			const Row vrows[] = {
				{"POST /v1/vms -> 201 | virsh create", api_201, virsh_ret},
				{"request -> guest answers | virsh create", api_answer, virsh_answer},
			};
			for (guint r = 0; r < G_N_ELEMENTS (vrows); r++)
				print_row (&vrows[r]);
		}
	}
	g_print ("runs: %d of each, alternating\n", runs);
	virConnectClose (conn);
	ppn_bench_print_load ("at the end");
	return 0;
}
