/* bench-api: the tenant API's throughput and latency over TLS, with wrk.
 *
 * A fleet.db of --total VM records (default 100,000: 1000 tenants) in
 * which tenant alice has --own of them (default 100, spread through the
 * table), all running on nodes that never heartbeat; ppn-fleetd is
 * started on it with node-timeout and lost-grace as large as they go,
 * so the reconciliation leaves the records alone during the run. For
 * keep-alive off (the default on libsoup 3.2: Connection: close, a TLS
 * handshake per request) and on (http-keep-alive=yes), wrk runs
 * GET /v1/vms (alice's 100) and GET /v1/vms/{id}, and the reference,
 * GET /v1/quota: the same TLS, HTTP server, token check and JSON writer
 * with a trivial handler, so that the ratio is what listing and lookup
 * add. Each row also gives ppn-fleetd's CPU share over the run.
 *
 * With keep-alive on this libsoup leaks: after the runs, --leak-conns
 * clients make one request each and close their connection while it is
 * idle; the descriptors ppn-fleetd holds before and after tell the
 * growth per connection.
 *
 * --silent-nodes: then node-timeout is 2 s instead, and the table says
 * how long the tick that marks the silent nodes' VMs 'unknown' keeps
 * the main loop (and with it every tenant request) waiting.
 *
 *   tools/bench/bench-api [-d SECONDS] [-c CONNS] [--total N] [--own N] [--silent-nodes]
 */
#include "config.h"

#include <string.h>

#include "bench-util.h"

static gint duration = 10;
static gint conns = 8;
static gint total = 100000;
static gint own = 100;
static gint leak_conns = 100;
static gboolean silent_nodes = FALSE;

static void
row (PpnTestFleet *fleet, const gchar *mode, const gchar *label, const gchar *path, const PpnBenchWrk *ref,
     PpnBenchWrk *out)
{
	g_autofree gchar *url = g_strconcat (fleet->url, path, NULL);
	const gchar *pid = ppn_bench_pid (fleet->fleetd);
	gdouble cpu0 = ppn_bench_cpu_seconds (pid), cpu;

	if (!ppn_bench_wrk (fleet->dir, url, fleet->token1, 1, (guint)conns, (guint)duration, out))
		g_error ("wrk against %s failed", url);
	cpu = (ppn_bench_cpu_seconds (pid) - cpu0) / duration * 100.0;
	g_print ("%-10s %-18s %10.0f %9.2f %9.2f %8" G_GUINT64_FORMAT " %7.0f%% %8.2f %8.2f\n", mode, label,
		 out->rps, out->p50_ms, out->p99_ms, out->errors, cpu,
		 ref != NULL ? out->rps / ref->rps : 1.0, ref != NULL ? out->p99_ms / ref->p99_ms : 1.0);
}

static gchar *
first_own_id (PpnTestFleet *fleet)
{
	guint status = 0;
	g_autoptr (JsonNode) list =
	    ppn_test_fleet_call (fleet, fleet->token1, "GET", "/v1/vms", NULL, &status, NULL);
	JsonArray *vms;

	if (status != 200)
		g_error ("GET /v1/vms: %u", status);
	vms = json_object_get_array_member (json_node_get_object (list), "vms");
	if (json_array_get_length (vms) != (guint)MIN (own, 100))
		g_error ("alice has %u VMs, not %d", json_array_get_length (vms), MIN (own, 100));
	return g_strdup (json_object_get_string_member (json_array_get_object_element (vms, 0), "id"));
}

static void
phase (const gchar *mode, const gchar *extra, gboolean measure_leak)
{
	g_autoptr (PpnTestFleet) fleet = ppn_bench_start_own_fleet ((guint)own, (guint)total, extra, 3600);
	g_autofree gchar *id = first_own_id (fleet);
	g_autofree gchar *one = g_strconcat ("/v1/vms/", id, NULL);
	g_autofree gchar *warm_url = g_strconcat (fleet->url, "/v1/quota", NULL);
	PpnBenchWrk ref, list, get, warm;

	/* a first run warms caches, the allocator and wrk itself up */
	ppn_bench_wrk (fleet->dir, warm_url, fleet->token1, 1, (guint)conns, 2, &warm);
	row (fleet, mode, "GET /v1/quota", "/v1/quota", NULL, &ref);
	row (fleet, mode, "GET /v1/vms", "/v1/vms", &ref, &list);
	row (fleet, mode, "GET /v1/vms/{id}", one, &ref, &get);
	if (measure_leak) {
		const gchar *pid = ppn_bench_pid (fleet->fleetd);
		guint fd0, fd1;

		/* one request a connection, which the client then closes while it
		 * is idle: the case libsoup 3.2's server never frees */
		g_usleep (G_USEC_PER_SEC);
		fd0 = ppn_bench_fd_count (pid);
		for (gint i = 0; i < leak_conns; i++) {
			g_autoptr (SoupSession) session = soup_session_new ();
			g_autofree gchar *url = g_strconcat (fleet->url, "/v1/quota", NULL);
			g_autofree gchar *auth = g_strconcat ("Bearer ", fleet->token1, NULL);
			g_autoptr (SoupMessage) msg = soup_message_new ("GET", url);
			g_autoptr (GBytes) body = NULL;

			soup_session_set_tls_database (session,
						       soup_session_get_tls_database (fleet->session));
			soup_message_headers_replace (soup_message_get_request_headers (msg), "Authorization",
						      auth);
			body = soup_session_send_and_read (session, msg, NULL, NULL);
			if (soup_message_get_status (msg) != 200)
				g_error ("GET /v1/quota: %u", soup_message_get_status (msg));
		}
		g_usleep (2 * G_USEC_PER_SEC);
		fd1 = ppn_bench_fd_count (pid);
		g_print (
		    "%-10s fds of ppn-fleetd: %u before, %u after %d connections of one request each, closed"
		    " idle by the client: %.2f per connection\n",
		    mode, fd0, fd1, leak_conns, (fd1 - (gdouble)fd0) / leak_conns);
	}
}

/* silent nodes: how long the tick blocks while it marks every VM of
 * the (never heard) nodes 'unknown', one store write each */
static void
silent_phase (void)
{
	g_autoptr (PpnTestFleet) fleet = ppn_bench_start_own_fleet ((guint)own, (guint)total, "", 2);
	g_autofree gchar *log_path = g_build_filename (fleet->dir, "fleetd.log", NULL);
	gint64 t0 = g_get_monotonic_time (), deadline = t0 + 600 * G_USEC_PER_SEC;
	gdouble worst = 0;
	guint marked = 0;

	while (g_get_monotonic_time () < deadline) {
		guint status = 0;
		gint64 r0 = g_get_monotonic_time ();
		g_autoptr (JsonNode) r =
		    ppn_test_fleet_call (fleet, fleet->token1, "GET", "/v1/quota", NULL, &status, NULL);
		gdouble ms = (g_get_monotonic_time () - r0) / 1000.0;
		g_autofree gchar *log = NULL;

		worst = MAX (worst, ms);
		if (g_file_get_contents (log_path, &log, NULL, NULL)) {
			const gchar *p = log;
			marked = 0;
			while ((p = strstr (p, "-> unknown")) != NULL) {
				marked++;
				p++;
			}
		}
		if (marked >= (guint)total)
			break;
		g_usleep (100000);
	}
	g_print ("silent nodes: %u of %d VMs marked unknown after %.1f s; the longest GET /v1/quota meanwhile"
		 " took %.0f ms\n",
		 marked, total, (g_get_monotonic_time () - t0) / (gdouble)G_USEC_PER_SEC, worst);
}

int
main (int argc, char **argv)
{
	const GOptionEntry entries[] = {
	    {"duration", 'd', 0, G_OPTION_ARG_INT, &duration, "Seconds of each wrk run (default 10)", "S"},
	    {"connections", 'c', 0, G_OPTION_ARG_INT, &conns, "wrk connections (default 8)", "N"},
	    {"total", 0, 0, G_OPTION_ARG_INT, &total, "VM records in the fleet (default 100000)", "N"},
	    {"own", 0, 0, G_OPTION_ARG_INT, &own, "alice's VMs among them (default 100)", "N"},
	    {"leak-conns", 0, 0, G_OPTION_ARG_INT, &leak_conns, "Connections for the fd count (default 100)",
	     "N"},
	    {"silent-nodes", 0, 0, G_OPTION_ARG_NONE, &silent_nodes, "Also time the mass 'unknown' marking",
	     NULL},
	    {NULL},
	};
	g_autoptr (GOptionContext) ctx = g_option_context_new (NULL);
	g_autoptr (GError) error = NULL;

	g_option_context_add_main_entries (ctx, entries, NULL);
	if (!g_option_context_parse (ctx, &argc, &argv, &error) || duration < 1 || conns < 1 || own < 1 ||
	    total < own) {
		g_printerr ("bench-api: %s\n", error != NULL ? error->message : "bad arguments");
		return 2;
	}
	ppn_bench_print_machine ();
	g_print (
	    "fleet: %d VM records, alice has %d; wrk -t1 -c%d -d%ds per row; reference GET /v1/quota\n\n",
	    total, own, conns, duration);
	g_print ("%-10s %-18s %10s %9s %9s %8s %8s %8s %8s\n", "keep-alive", "request", "req/s", "p50 ms",
		 "p99 ms", "errors", "fleetd", "rps/ref", "p99/ref");
	phase ("off", "http-keep-alive=no", TRUE);
	phase ("on", "http-keep-alive=yes", TRUE);
	if (silent_nodes)
		silent_phase ();
	ppn_bench_print_load ("at the end");
	return 0;
}
