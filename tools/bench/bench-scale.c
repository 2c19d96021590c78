/* bench-scale: one real ppn-fleetd against many simulated nodes.
 *
 * --nodes real ppn agents (default 1000; tools/bench/ppn-sim-agents,
 * --per-process of them in each process) on private libvirt test
 * drivers, each running --vms domains (default 100), heartbeat every
 * --interval seconds (default 5) to one ppn-fleetd. The fleet.db is
 * seeded with the matching records (VM i on node sim(i / vms), tenant
 * t(i % 1000)) and each node's test driver with the domains the agent
 * itself would have generated for them, so the heartbeats echo the
 * records and the reconciliation finds every VM running: nothing is
 * created through the API but what is timed.
 *
 * The fleet starts first, then the simulators one process after the
 * other, each spreading its agents' starts over one interval; with
 * node-timeout 600 s every node is heard in time and no record is
 * touched.
 * Once every node is alive and --warmup seconds have passed, over a
 * --window (default 180 s): ppn-fleetd's CPU (utime+stime from
 * /proc/PID/stat) and RSS, the simulators' CPU, the heartbeats' round
 * trip as the simulators time it (TLS handshake included, since the
 * fleet closes every connection on libsoup 3.2), and the fleet's own
 * handling time per heartbeat (its debug log). Then --creates creates
 * (POST /v1/vms -> 201, then DELETE) time placement with every node
 * live. The reference is the same run with one node.
 *
 * Ten agents a process, a hundred processes: glib-networking runs each
 * TLS handshake as a blocking call in GLib's GTask pool (10 threads,
 * growing slowly), on the fleet's side and on the agents'. With more
 * agents than pool threads in one process, client handshakes wait for a
 * thread while the fleet's threads wait for them, and heartbeats time
 * out (tools/bench/README.md): independent nodes never share a pool.
 *
 * Both share this machine's cores: the table gives the CPU of both.
 *
 *   tools/bench/bench-scale [--nodes N] [--vms V] [--per-process K] [--interval S]
 *                           [--window S] [--warmup S] [--creates N] [--no-reference]
 */
#include "config.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>

#include "bench-util.h"

static gint nodes = 1000;
static gint vms = 100;
static gint per_process = 10;
static gint interval = 5;
static gint window = 180;
static gint warmup = 20;
static gint creates = 20;
static gboolean no_reference = FALSE;
static gchar *keep_alive = NULL;
static gint perf_seconds = 0;

#define SIM_FIRST_PORT 40000

typedef struct {
	guint nodes;
	gdouble hb_per_s;
	gdouble fleet_cpu;	 /* % of one core */
	gdouble fleet_ms_per_hb; /* CPU ms per heartbeat */
	gdouble fleet_rss;	 /* MiB */
	gdouble sims_cpu;	 /* % of one core, all processes */
	gdouble rtt_p50, rtt_p99;
	gdouble handle_p50, handle_p99;
	guint failed;
	gdouble create_p50, create_p95;
	gdouble converge_s; /* fleet start to every node alive */
	gdouble stop_s;	    /* SIGTERM to exit, -1: killed after 15 s */
} ScaleResult;

static void
scale_record (guint i, PpnBenchRecord *rec, gpointer user_data)
{
	g_string_printf (rec->tenant, "t%u", i % 1000);
	g_string_printf (rec->node, "sim%04u", i / (guint)vms);
	rec->host_port = SIM_FIRST_PORT + i % (guint)vms;
}

/* how many times @needle occurs in @path from @offset on */
static guint
count_in_file (const gchar *path, const gchar *needle, gsize offset)
{
	g_autofree gchar *contents = NULL;
	gsize len = 0;
	const gchar *p;
	guint n = 0;

	if (!g_file_get_contents (path, &contents, &len, NULL) || offset > len)
		return 0;
	for (p = contents + offset; (p = strstr (p, needle)) != NULL; p++)
		n++;
	return n;
}

static gsize
file_size (const gchar *path)
{
	g_autofree gchar *contents = NULL;
	gsize len = 0;

	g_file_get_contents (path, &contents, &len, NULL);
	return len;
}

static void
sims_child_setup (gpointer user_data)
{
	/* a benchmark that dies takes its simulators with it */
	prctl (PR_SET_PDEATHSIG, SIGTERM);
}

static GSubprocess *
spawn_sims (PpnTestFleet *fleet, guint first, guint count, guint index)
{
	g_autofree gchar *bin = ppn_test_build_path ("tools/bench/ppn-sim-agents");
	g_autofree gchar *simdir = g_build_filename (fleet->dir, "sim", NULL);
	g_autofree gchar *log = g_strdup_printf ("%s/sim-%u.log", fleet->dir, index);
	g_autofree gchar *url = g_strdup_printf ("https://127.0.0.1:%u", fleet->mesh_port);
	g_autofree gchar *first_s = g_strdup_printf ("%u", first);
	g_autofree gchar *count_s = g_strdup_printf ("%u", count);
	g_autofree gchar *vms_s = g_strdup_printf ("%d", vms);
	g_autofree gchar *interval_s = g_strdup_printf ("%d", interval);
	g_autofree gchar *port_s = g_strdup_printf ("%d", SIM_FIRST_PORT);
	g_autoptr (GSubprocessLauncher) launcher =
	    g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDERR_MERGE);
	g_autoptr (GError) error = NULL;
	GSubprocess *proc;

	g_mkdir_with_parents (simdir, 0700);
	g_subprocess_launcher_set_stdout_file_path (launcher, log);
	g_subprocess_launcher_unsetenv (launcher, "G_MESSAGES_DEBUG");
	g_subprocess_launcher_set_child_setup (launcher, sims_child_setup, NULL, NULL);
	proc = g_subprocess_launcher_spawn (launcher, &error, bin, "--dir", simdir, "--ca-dir", fleet->ca_dir,
					    "--fleet-url", url, "--image-dir", fleet->image_dir, "--first",
					    first_s, "--count", count_s, "--vms", vms_s, "--interval",
					    interval_s, "--first-port", port_s, NULL);
	if (proc == NULL)
		g_error ("cannot start %s: %s", bin, error->message);
	return proc;
}

static guint
sims_listening (PpnTestFleet *fleet, guint procs)
{
	guint n = 0;

	for (guint p = 0; p < procs; p++) {
		g_autofree gchar *log = g_strdup_printf ("%s/sim-%u.log", fleet->dir, p);
		n += count_in_file (log, " listening on ", 0);
	}
	return n;
}

static void
signal_all (GPtrArray *sims, gint signum)
{
	for (guint p = 0; p < sims->len; p++)
		g_subprocess_send_signal (g_ptr_array_index (sims, p), signum);
}

static gdouble
cpu_all (GPtrArray *sims)
{
	gdouble s = 0;

	for (guint p = 0; p < sims->len; p++)
		s += ppn_bench_cpu_seconds (ppn_bench_pid (g_ptr_array_index (sims, p)));
	return s;
}

/* the "handled in X ms" figures of the fleet's log from @offset on */
static GArray *
handled_times (const gchar *path, gsize offset)
{
	g_autofree gchar *contents = NULL;
	GArray *v = g_array_new (FALSE, FALSE, sizeof (gdouble));
	gsize len = 0;
	const gchar *needle = " handled in ";

	if (!g_file_get_contents (path, &contents, &len, NULL) || offset > len)
		return v;
	for (const gchar *p = contents + offset; (p = strstr (p, needle)) != NULL; p++) {
		gdouble ms = g_ascii_strtod (p + strlen (needle), NULL);
		g_array_append_val (v, ms);
	}
	return v;
}

static void
run_scale (guint n_nodes, ScaleResult *r)
{
	g_autofree gchar *extra =
	    g_strdup_printf ("http-keep-alive=%s", keep_alive != NULL ? keep_alive : "auto");
	PpnTestFleetOptions opts = {.libvirt_uri = "test:///default",
				    .max_vms = 1000,
				    .node_timeout = 600,
				    .lost_grace = 600,
				    .fleet_extra = extra};
	g_autoptr (PpnTestFleet) fleet =
	    ppn_bench_fleet_with_db (&opts, n_nodes * (guint)vms, scale_record, NULL);
	g_autoptr (GPtrArray) sims = g_ptr_array_new_with_free_func (g_object_unref);
	g_autoptr (GError) error = NULL;
	g_autoptr (GArray) rtt = g_array_new (FALSE, FALSE, sizeof (gdouble));
	g_autoptr (GArray) handled = NULL;
	g_autoptr (GArray) create_ms = g_array_new (FALSE, FALSE, sizeof (gdouble));
	g_autofree gchar *fleet_log = g_build_filename (fleet->dir, "fleetd.log", NULL);
	guint procs = (n_nodes + (guint)per_process - 1) / (guint)per_process;
	gint64 t0, deadline;
	gdouble fcpu0, scpu0, elapsed;
	gsize log_offset;
	const gchar *fpid;
	g_autoptr (GSubprocess) perf = NULL;

	memset (r, 0, sizeof *r);
	r->nodes = n_nodes;
	/* the fleet first, then the nodes one process after another, so that
	 * the agents' starts (and TLS handshakes) spread out */
	if (!ppn_test_fleet_start_fleetd (fleet, &error))
		g_error ("ppn-fleetd: %s", error->message);
	fpid = ppn_bench_pid (fleet->fleetd);
	t0 = g_get_monotonic_time ();
	for (guint p = 0; p < procs; p++) {
		guint first = p * (guint)per_process;
		g_ptr_array_add (sims,
				 spawn_sims (fleet, first, MIN ((guint)per_process, n_nodes - first), p));
	}
	deadline = g_get_monotonic_time () + 900 * G_USEC_PER_SEC;
	while (sims_listening (fleet, procs) < n_nodes) {
		if (g_get_monotonic_time () > deadline)
			g_error ("only %u of %u simulated agents are listening",
				 sims_listening (fleet, procs), n_nodes);
		g_usleep (500000);
	}
	g_printerr ("bench-scale: %u simulated agents listening in %u processes after %.1f s\n", n_nodes,
		    procs, (g_get_monotonic_time () - t0) / (gdouble)G_USEC_PER_SEC);
	while (count_in_file (fleet_log, " is alive at ", 0) < n_nodes) {
		if (g_get_monotonic_time () - t0 > 600 * G_USEC_PER_SEC)
			g_error ("only %u of %u nodes alive after 600 s",
				 count_in_file (fleet_log, " is alive at ", 0), n_nodes);
		g_usleep (200000);
	}
	r->converge_s = (g_get_monotonic_time () - t0) / (gdouble)G_USEC_PER_SEC;
	g_printerr ("bench-scale: %u nodes alive after %.1f s; warming up %d s\n", n_nodes, r->converge_s,
		    warmup);
	g_usleep ((gulong)warmup * G_USEC_PER_SEC);

	/* the window */
	signal_all (sims, SIGUSR1);
	log_offset = file_size (fleet_log);
	fcpu0 = ppn_bench_cpu_seconds (fpid);
	scpu0 = cpu_all (sims);
	t0 = g_get_monotonic_time ();
	g_printerr ("bench-scale: measuring for %d s\n", window);
	if (perf_seconds > 0 && n_nodes > 1) {
		/* perf record on ppn-fleetd, while the window runs (it costs a few %) */
		g_autofree gchar *out = g_build_filename (fleet->dir, "perf.data", NULL);
		g_autofree gchar *secs = g_strdup_printf ("%d", MIN (perf_seconds, window));
		perf = g_subprocess_new (
		    G_SUBPROCESS_FLAGS_STDOUT_SILENCE | G_SUBPROCESS_FLAGS_STDERR_SILENCE, &error, "perf",
		    "record", "-F", "499", "-g", "-p", fpid, "-o", out, "--", "sleep", secs, NULL);
		if (perf == NULL)
			g_printerr ("bench-scale: perf: %s\n", error->message);
		g_clear_error (&error);
	}
	g_usleep ((gulong)window * G_USEC_PER_SEC);
	elapsed = (g_get_monotonic_time () - t0) / (gdouble)G_USEC_PER_SEC;
	r->fleet_cpu = (ppn_bench_cpu_seconds (fpid) - fcpu0) / elapsed * 100.0;
	r->sims_cpu = (cpu_all (sims) - scpu0) / elapsed * 100.0;
	r->fleet_rss = ppn_bench_rss_kib (fpid) / 1024.0;
	signal_all (sims, SIGUSR2);
	g_usleep (G_USEC_PER_SEC);
	if (perf != NULL) {
		g_autofree gchar *data = g_build_filename (fleet->dir, "perf.data", NULL);
		g_autofree gchar *cmd =
		    g_strdup_printf ("perf report -i '%s' --stdio --no-children --sort dso,sym"
				     " --percent-limit 1.5 -g none 2>/dev/null | grep '%%' | head -30",
				     data);
		const gchar *argv[] = {"sh", "-c", cmd, NULL};
		g_autofree gchar *report = NULL;

		g_subprocess_wait (perf, NULL, NULL);
		report = ppn_test_run (argv, NULL);
		g_print ("perf: where ppn-fleetd's CPU went with %u nodes (self time, top entries)\n%s\n",
			 n_nodes, report != NULL ? report : "(no report)");
		{
			/* by library: TLS (gnutls, nettle, gmp, tasn1, p11-kit), JSON
			 * (json-glib, and much of glib's and libc's allocation), HTTP
			 * (libsoup), ppn-fleetd itself */
			g_autofree gchar *cmd2 = g_strdup_printf ("perf report -i '%s' --stdio --no-children "
								  "--sort dso -g none 2>/dev/null | grep '%%'"
								  " | head -14",
								  data);
			const gchar *argv2[] = {"sh", "-c", cmd2, NULL};
			g_autofree gchar *report2 = ppn_test_run (argv2, NULL);
			g_print ("perf: by library\n%s\n", report2 != NULL ? report2 : "(no report)");
		}
	}
	for (guint p = 0; p < procs; p++) {
		g_autofree gchar *path =
		    g_strdup_printf ("%s/sim/rtt-%u.txt", fleet->dir, p * (guint)per_process);
		g_autofree gchar *contents = NULL;
		g_auto (GStrv) lines = NULL;

		if (!g_file_get_contents (path, &contents, NULL, NULL))
			g_error ("no samples in %s", path);
		lines = g_strsplit (contents, "\n", -1);
		for (guint l = 0; lines[l] != NULL; l++) {
			gdouble ms;
			if (*lines[l] == '\0')
				continue;
			ms = g_ascii_strtod (lines[l], NULL);
			if (ms < 0)
				r->failed++;
			else
				g_array_append_val (rtt, ms);
		}
	}
	handled = handled_times (fleet_log, log_offset);
	r->hb_per_s = (rtt->len + r->failed) / elapsed;
	r->fleet_ms_per_hb = r->hb_per_s > 0 ? r->fleet_cpu * 10.0 / r->hb_per_s : 0;
	r->rtt_p50 = ppn_bench_percentile (rtt, 0.5);
	r->rtt_p99 = ppn_bench_percentile (rtt, 0.99);
	r->handle_p50 = ppn_bench_percentile (handled, 0.5);
	r->handle_p99 = ppn_bench_percentile (handled, 0.99);

	/* placement with every node live */
	for (gint i = 0; i < creates; i++) {
		g_autofree gchar *body =
		    g_strdup_printf ("{\"name\":\"place%d\",\"image\":\"test-guest\",\"vcpus\":1,"
				     "\"memory_mib\":256}",
				     i);
		g_autofree gchar *raw = NULL;
		g_autofree gchar *path = NULL;
		guint status = 0;
		gint64 c0 = g_get_monotonic_time ();
		g_autoptr (JsonNode) vm =
		    ppn_test_fleet_call (fleet, fleet->token1, "POST", "/v1/vms", body, &status, &raw);
		gdouble ms = (g_get_monotonic_time () - c0) / 1000.0;

		if (status != 201)
			g_error ("create with %u nodes: %u %s", n_nodes, status, raw != NULL ? raw : "");
		g_array_append_val (create_ms, ms);
		path = g_strconcat ("/v1/vms/",
				    json_object_get_string_member (json_node_get_object (vm), "id"), NULL);
		g_clear_pointer (&vm, json_node_unref);
		vm = ppn_test_fleet_call (fleet, fleet->token1, "DELETE", path, NULL, &status, NULL);
		if (status != 204)
			g_error ("delete with %u nodes: %u", n_nodes, status);
	}
	r->create_p50 = ppn_bench_percentile (create_ms, 0.5);
	r->create_p95 = ppn_bench_percentile (create_ms, 0.95);

	/* SIGTERM, and SIGKILL if it has not ended 15 s later: with many
	 * kept-alive connections, ppn-fleetd's shutdown can hang closing them
	 * (tools/bench/README.md) */
	{
		gint64 stop0 = g_get_monotonic_time ();
		g_subprocess_send_signal (fleet->fleetd, SIGTERM);
		while (g_subprocess_get_identifier (fleet->fleetd) != NULL &&
		       g_get_monotonic_time () - stop0 < 15 * G_USEC_PER_SEC) {
			g_main_context_iteration (NULL, FALSE);
			g_usleep (50000);
		}
		r->stop_s = (g_get_monotonic_time () - stop0) / (gdouble)G_USEC_PER_SEC;
		if (g_subprocess_get_identifier (fleet->fleetd) != NULL) {
			g_printerr (
			    "bench-scale: ppn-fleetd did not stop within 15 s of SIGTERM; killing it\n");
			r->stop_s = -1;
			g_subprocess_force_exit (fleet->fleetd);
		}
		ppn_test_fleet_stop_fleetd (fleet, SIGKILL);
	}
	signal_all (sims, SIGTERM);
	for (guint p = 0; p < sims->len; p++)
		g_subprocess_wait (g_ptr_array_index (sims, p), NULL, NULL);
}

/* a figure with @decimals decimals, for N nodes and for one */
static void
print_line (const gchar *what, gdouble a, gdouble b, gboolean have_b, gint decimals)
{
	g_autofree gchar *sa = g_strdup_printf ("%.*f", decimals, a);
	g_autofree gchar *sb = have_b ? g_strdup_printf ("%.*f", decimals, b) : g_strdup ("-");

	if (have_b && b != 0)
		g_print ("%-46s %14s %12s %8.2f\n", what, sa, sb, a / b);
	else
		g_print ("%-46s %14s %12s %8s\n", what, sa, sb, "-");
}

int
main (int argc, char **argv)
{
	const GOptionEntry entries[] = {
	    {"nodes", 'n', 0, G_OPTION_ARG_INT, &nodes, "Simulated nodes (default 1000)", "N"},
	    {"vms", 0, 0, G_OPTION_ARG_INT, &vms, "VMs per node (default 100)", "V"},
	    {"per-process", 0, 0, G_OPTION_ARG_INT, &per_process, "Agents per simulator process (default 10)",
	     "K"},
	    {"interval", 0, 0, G_OPTION_ARG_INT, &interval, "Heartbeat interval, s (default 5)", "S"},
	    {"window", 'w', 0, G_OPTION_ARG_INT, &window, "Measured steady state, s (default 180)", "S"},
	    {"warmup", 0, 0, G_OPTION_ARG_INT, &warmup, "Steady state before it, s (default 20)", "S"},
	    {"creates", 0, 0, G_OPTION_ARG_INT, &creates, "Timed creates (default 20)", "N"},
	    {"keep-alive", 0, 0, G_OPTION_ARG_STRING, &keep_alive,
	     "The fleet's http-keep-alive (default auto)", "auto|yes|no"},
	    {"perf", 0, 0, G_OPTION_ARG_INT, &perf_seconds, "perf record ppn-fleetd this long in the window",
	     "S"},
	    {"no-reference", 0, 0, G_OPTION_ARG_NONE, &no_reference, "Skip the one-node run", NULL},
	    {NULL},
	};
	g_autoptr (GOptionContext) ctx = g_option_context_new (NULL);
	g_autoptr (GError) error = NULL;
	ScaleResult big, one;

	g_option_context_add_main_entries (ctx, entries, NULL);
	if (!g_option_context_parse (ctx, &argc, &argv, &error) || nodes < 1 || vms < 0 || per_process < 1 ||
	    window < 1 || creates < 1) {
		g_printerr ("bench-scale: %s\n", error != NULL ? error->message : "bad arguments");
		return 2;
	}
	ppn_bench_print_machine ();
	run_scale ((guint)nodes, &big);
	memset (&one, 0, sizeof one);
	if (!no_reference)
		run_scale (1, &one);
	g_print (
	    "fleet: %d nodes x %d VMs (%d records), heartbeat every %d s, %d agents per simulator process;"
	    " window %d s; http-keep-alive=%s\n\n",
	    nodes, vms, nodes * vms, interval, per_process, window, keep_alive != NULL ? keep_alive : "auto");
	g_print ("%-46s %14s %12s %8s\n", "figure", "N nodes", "1 node", "ratio");
	print_line ("heartbeats received per s", big.hb_per_s, one.hb_per_s, !no_reference, 1);
	print_line ("heartbeats failed in the window", big.failed, one.failed, !no_reference, 0);
	print_line ("ppn-fleetd CPU (% of one core)", big.fleet_cpu, one.fleet_cpu, !no_reference, 1);
	print_line ("ppn-fleetd CPU per heartbeat (ms)", big.fleet_ms_per_hb, one.fleet_ms_per_hb,
		    !no_reference, 2);
	print_line ("ppn-fleetd RSS (MiB)", big.fleet_rss, one.fleet_rss, !no_reference, 1);
	print_line ("simulators' CPU (% of one core, all)", big.sims_cpu, one.sims_cpu, !no_reference, 1);
	print_line ("heartbeat round trip p50 (ms, at the agent)", big.rtt_p50, one.rtt_p50, !no_reference,
		    2);
	print_line ("heartbeat round trip p99 (ms, at the agent)", big.rtt_p99, one.rtt_p99, !no_reference,
		    2);
	print_line ("fleet handler per heartbeat p50 (ms)", big.handle_p50, one.handle_p50, !no_reference, 3);
	print_line ("fleet handler per heartbeat p99 (ms)", big.handle_p99, one.handle_p99, !no_reference, 3);
	print_line ("POST /v1/vms -> 201 median (ms)", big.create_p50, one.create_p50, !no_reference, 1);
	print_line ("POST /v1/vms -> 201 p95 (ms)", big.create_p95, one.create_p95, !no_reference, 1);
	print_line ("fleet start -> every node alive (s)", big.converge_s, one.converge_s, !no_reference, 1);
	print_line ("SIGTERM -> ppn-fleetd gone (s; -1: killed at 15)", big.stop_s, one.stop_s, !no_reference,
		    1);
	ppn_bench_print_load ("at the end");
	return 0;
}
