#include "config.h"

#define G_LOG_DOMAIN "ppn-bench"

#include <glib/gstdio.h>
#include <libsoup/soup.h>
#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "bench-util.h"

static gint
ppn_bench_cmp_double (gconstpointer a, gconstpointer b)
{
	gdouble x = *(const gdouble *)a, y = *(const gdouble *)b;
	return x < y ? -1 : x > y;
}

gdouble
ppn_bench_percentile (GArray *v, gdouble p)
{
	guint idx;

	if (v->len == 0)
		return 0;
	g_array_sort (v, ppn_bench_cmp_double);
	idx = (guint)MIN (v->len - 1, (guint)(p * (v->len - 1) + 0.5));
	return g_array_index (v, gdouble, idx);
}

/* the first line of a command's output, or "?" */
static gchar *
ppn_bench_first_line (const gchar *const *argv)
{
	g_autofree gchar *out = ppn_test_run (argv, NULL);
	gchar *nl;

	if (out == NULL || *out == '\0')
		return g_strdup ("?");
	nl = strchr (out, '\n');
	if (nl != NULL)
		*nl = '\0';
	return g_strdup (g_strstrip (out));
}

/* the value after "@key:" in a /proc file such as /proc/cpuinfo */
static gchar *
ppn_bench_proc_field (const gchar *path, const gchar *key)
{
	g_autofree gchar *contents = NULL;
	const gchar *line, *colon, *end;

	if (!g_file_get_contents (path, &contents, NULL, NULL) || (line = strstr (contents, key)) == NULL ||
	    (colon = strchr (line, ':')) == NULL)
		return g_strdup ("?");
	end = strchr (colon, '\n');
	return g_strstrip (
	    g_strndup (colon + 1, end != NULL ? (gsize)(end - colon - 1) : strlen (colon + 1)));
}

void
ppn_bench_print_machine (void)
{
	struct utsname u;
	const gchar *virsh_argv[] = {"virsh", "--version", NULL};
	const gchar *qemu_argv[] = {"qemu-system-x86_64", "--version", NULL};
	const gchar *wrk_argv[] = {"sh", "-c", "wrk --version 2>&1 | head -1 | cut -d' ' -f1-2", NULL};
	g_autofree gchar *model = ppn_bench_proc_field ("/proc/cpuinfo", "model name");
	g_autofree gchar *mem = ppn_bench_proc_field ("/proc/meminfo", "MemTotal");
	g_autofree gchar *virsh = ppn_bench_first_line (virsh_argv);
	g_autofree gchar *qemu = ppn_bench_first_line (qemu_argv);
	g_autofree gchar *wrk = ppn_bench_first_line (wrk_argv);

	uname (&u);
	g_print ("machine: %s, %u cores, %.1f GiB RAM, %s %s\n", model, g_get_num_processors (),
		 g_ascii_strtod (mem, NULL) / (1024.0 * 1024.0), u.sysname, u.release);
	g_print ("software: libvirt %s, %s, libsoup %u.%u.%u, GLib %u.%u.%u, %s\n", virsh, qemu,
		 soup_get_major_version (), soup_get_minor_version (), soup_get_micro_version (),
		 glib_major_version, glib_minor_version, glib_micro_version, wrk);
	ppn_bench_print_load ("at the start");
}

PpnBenchOwnSpread
ppn_bench_own_spread (guint own, guint total)
{
	PpnBenchOwnSpread spread = {own, MAX (1, total / MAX (1, own))};
	return spread;
}

void
ppn_bench_own_record (guint i, PpnBenchRecord *rec, gpointer user_data)
{
	const PpnBenchOwnSpread *spread = user_data;

	if (i % spread->stride == 0 && i / spread->stride < spread->own)
		g_string_assign (rec->tenant, "alice");
	else
		g_string_printf (rec->tenant, "t%u", 1 + i % 999);
	g_string_printf (rec->node, "node%u", i % 1000);
}

/* other work on the machine skews every figure: say how busy it was */
void
ppn_bench_print_load (const gchar *when)
{
	g_autofree gchar *load = NULL;

	if (g_file_get_contents ("/proc/loadavg", &load, NULL, NULL))
		g_print ("load average %s: %s", when, load);
}

gchar *
ppn_bench_vm_id (guint i)
{
	return g_strdup_printf ("%016x", 0x10000000u + i);
}

void
ppn_bench_write_db (const gchar *path, guint n, PpnBenchRecordFunc func, gpointer user_data)
{
	g_autofree gchar *sql_path = g_strconcat (path, ".sql", NULL);
	FILE *f = fopen (sql_path, "w");
	g_autofree gchar *cmd = g_strdup_printf ("sqlite3 '%s' < '%s' > /dev/null", path, sql_path);
	const gchar *argv[] = {"sh", "-c", cmd, NULL};
	PpnBenchRecord rec = {g_string_new (NULL), g_string_new (NULL), 0};
	gint status = -1;

	g_assert_nonnull (f);
	/* the schema of src/fleet/ppn-store.c, version 2 */
	fprintf (
	    f,
	    "PRAGMA journal_mode=WAL;\nBEGIN;\n"
	    "CREATE TABLE vms (id TEXT PRIMARY KEY NOT NULL, tenant TEXT NOT NULL, name TEXT NOT NULL,"
	    " image TEXT NOT NULL, vcpus INTEGER NOT NULL, memory_mib INTEGER NOT NULL, state TEXT NOT NULL,"
	    " node TEXT, port_forwards TEXT NOT NULL DEFAULT '[]', created_at INTEGER NOT NULL,"
	    " updated_at INTEGER NOT NULL, egress TEXT NOT NULL DEFAULT 'nat');\n"
	    "CREATE INDEX vms_by_tenant ON vms (tenant, created_at);\n"
	    "CREATE INDEX vms_by_state ON vms (state);\n");
	for (guint i = 0; i < n; i++) {
		g_autofree gchar *id = ppn_bench_vm_id (i);
		g_autofree gchar *node = NULL;

		g_string_truncate (rec.tenant, 0);
		g_string_truncate (rec.node, 0);
		rec.host_port = 20000 + i % 1000;
		func (i, &rec, user_data);
		node = rec.node->len > 0 ? g_strdup_printf ("'%s'", rec.node->str) : g_strdup ("NULL");
		fprintf (f,
			 "INSERT INTO vms VALUES ('%s','%s','vm%u','test-guest',1,256,'running',%s,"
			 "'[{\"guest_port\":80,\"proto\":\"tcp\",\"host_address\":\"127.0.0.1\",\"host_"
			 "port\":%u}]',"
			 "%u,%u,'nat');\n",
			 id, rec.tenant->str, i, node, rec.host_port, 1000000 + i, 1000000 + i);
	}
	fprintf (f, "COMMIT;\nPRAGMA user_version = 2;\n");
	fclose (f);
	g_string_free (rec.tenant, TRUE);
	g_string_free (rec.node, TRUE);
	g_spawn_sync (NULL, (gchar **)argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, NULL, NULL, &status, NULL);
	g_assert_true (g_spawn_check_wait_status (status, NULL));
	g_unlink (sql_path);
}

PpnTestFleet *
ppn_bench_fleet_with_db (const PpnTestFleetOptions *opts, guint n, PpnBenchRecordFunc func,
			 gpointer user_data)
{
	g_autoptr (GError) error = NULL;
	g_autoptr (PpnTestFleet) fleet = ppn_test_fleet_new (opts, &error);
	g_autofree gchar *state = NULL;
	g_autofree gchar *db = NULL;

	if (fleet == NULL)
		g_error ("cannot set up a fleet: %s", error->message);
	state = g_build_filename (fleet->dir, "fleet", NULL);
	g_mkdir_with_parents (state, 0700);
	db = g_build_filename (state, "fleet.db", NULL);
	ppn_bench_write_db (db, n, func, user_data);
	return g_steal_pointer (&fleet);
}

/* 1000 tenants, 1000 nodes */
static void
spread_record (guint i, PpnBenchRecord *rec, gpointer user_data)
{
	g_string_printf (rec->tenant, "t%u", i % 1000);
	g_string_printf (rec->node, "node%u", i % 1000);
}

static gdouble
sqlite_scan_ms (const gchar *path)
{
	g_autofree gchar *cmd = g_strdup_printf (
	    "sqlite3 '%s' \"SELECT count(*), sum(length(id)+length(tenant)+length(name)+length(image)+"
	    "length(port_forwards)+vcpus+memory_mib) FROM vms WHERE state != 'deleted'\" > /dev/null",
	    path);
	const gchar *argv[] = {"sh", "-c", cmd, NULL};
	gint64 t0 = g_get_monotonic_time ();
	gint status = -1;

	g_spawn_sync (NULL, (gchar **)argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, NULL, NULL, &status, NULL);
	return (g_get_monotonic_time () - t0) / 1000.0;
}

/* the restore table (bench-restore, bench-growth): for each size a
 * fleet.db of that many records (1000 tenants on 1000 nodes, all
 * running), ppn-fleetd started on it: its logged restore time, exec to
 * the first answered request, its RSS, against sqlite3 reading the rows */
void
ppn_bench_restore_table (const gchar *const *sizes)
{
	g_print ("%10s %14s %18s %12s %14s %8s\n", "records", "restore (ms)", "exec->1st ans (ms)",
		 "RSS (MiB)", "sqlite3 (ms)", "ratio");
	for (guint s = 0; sizes[s] != NULL; s++) {
		guint n = (guint)g_ascii_strtoull (sizes[s], NULL, 10);
		PpnTestFleetOptions opts = {.libvirt_uri = "test:///default", .max_vms = 4};
		g_autoptr (PpnTestFleet) fleet = ppn_bench_fleet_with_db (&opts, n, spread_record, NULL);
		g_autofree gchar *db = g_build_filename (fleet->dir, "fleet", "fleet.db", NULL);
		g_autofree gchar *log_path = NULL;
		g_autofree gchar *log = NULL;
		g_autoptr (GError) error = NULL;
		const gchar *line;
		gdouble restore_ms = -1, first_ms, scan_ms;
		gint64 t0;
		guint status = 0;

		t0 = g_get_monotonic_time ();
		if (!ppn_test_fleet_start_fleetd (fleet, &error))
			g_error ("ppn-fleetd: %s", error->message);
		/* first answered tenant request: the registry is whole by then */
		while (TRUE) {
			g_autoptr (JsonNode) r = ppn_test_fleet_call (fleet, fleet->token1, "GET",
								      "/v1/quota", NULL, &status, NULL);
			if (status == 200)
				break;
			g_usleep (1000);
		}
		first_ms = (g_get_monotonic_time () - t0) / 1000.0;
		log_path = g_build_filename (fleet->dir, "fleetd.log", NULL);
		g_file_get_contents (log_path, &log, NULL, NULL);
		line = log != NULL ? strstr (log, "VM records in ") : NULL;
		if (line != NULL)
			restore_ms = g_ascii_strtod (line + strlen ("VM records in "), NULL);
		scan_ms = sqlite_scan_ms (db);
		g_print ("%10u %14.1f %18.1f %12.1f %14.1f %8.2f\n", n, restore_ms, first_ms,
			 ppn_bench_rss_kib (ppn_bench_pid (fleet->fleetd)) / 1024.0, scan_ms,
			 restore_ms / scan_ms);
	}
}

PpnTestFleet *
ppn_bench_start_own_fleet (guint own, guint total, const gchar *extra, guint node_timeout)
{
	PpnTestFleetOptions opts = {.libvirt_uri = "test:///default",
				    .max_vms = 100000,
				    .node_timeout = node_timeout,
				    .lost_grace = 86400,
				    .fleet_extra = extra};
	PpnBenchOwnSpread spread = ppn_bench_own_spread (own, total);
	g_autoptr (PpnTestFleet) fleet =
	    ppn_bench_fleet_with_db (&opts, total, ppn_bench_own_record, &spread);
	g_autoptr (GError) error = NULL;

	if (!ppn_test_fleet_start_fleetd (fleet, &error))
		g_error ("ppn-fleetd: %s", error->message);
	return g_steal_pointer (&fleet);
}

const gchar *
ppn_bench_pid (GSubprocess *proc)
{
	const gchar *pid = g_subprocess_get_identifier (proc);
	return pid != NULL ? pid : "0";
}

guint64
ppn_bench_rss_kib (const gchar *pid)
{
	g_autofree gchar *path = g_strdup_printf ("/proc/%s/status", pid);
	g_autofree gchar *rss = ppn_bench_proc_field (path, "VmRSS");

	return g_ascii_strtoull (rss, NULL, 10);
}

gdouble
ppn_bench_cpu_seconds (const gchar *pid)
{
	g_autofree gchar *path = g_strdup_printf ("/proc/%s/stat", pid);
	g_autofree gchar *stat = NULL;
	g_auto (GStrv) fields = NULL;
	const gchar *paren;

	/* the command may hold spaces: count the fields after its ')' */
	if (!g_file_get_contents (path, &stat, NULL, NULL) || (paren = strrchr (stat, ')')) == NULL)
		return 0;
	fields = g_strsplit (paren + 2, " ", -1);
	if (g_strv_length (fields) < 13)
		return 0;
	/* fields 14 and 15 of the whole line: utime, stime */
	return (g_ascii_strtod (fields[11], NULL) + g_ascii_strtod (fields[12], NULL)) /
	       sysconf (_SC_CLK_TCK);
}

guint
ppn_bench_fd_count (const gchar *pid)
{
	g_autofree gchar *path = g_strdup_printf ("/proc/%s/fd", pid);
	g_autoptr (GDir) dir = g_dir_open (path, 0, NULL);
	guint n = 0;

	while (dir != NULL && g_dir_read_name (dir) != NULL)
		n++;
	return n;
}

/* the Lua script: the header on every request, and the figures printed
 * in one line wrk's own output does not have */
static const gchar ppn_bench_wrk_lua[] =
    "wrk.headers[\"Authorization\"] = \"Bearer \" .. os.getenv(\"PPN_BENCH_TOKEN\")\n"
    "done = function(summary, latency, requests)\n"
    "  local e = summary.errors\n"
    "  io.write(string.format(\"PPNBENCH %d %d %.3f %.3f %.3f\\n\", summary.requests,\n"
    "    e.connect + e.read + e.write + e.status + e.timeout,\n"
    "    summary.requests / (summary.duration / 1e6),\n"
    "    latency:percentile(50) / 1000, latency:percentile(99) / 1000))\n"
    "end\n";

gboolean
ppn_bench_wrk (const gchar *dir, const gchar *url, const gchar *token, guint threads, guint conns,
	       guint seconds, PpnBenchWrk *out)
{
	g_autofree gchar *script = g_build_filename (dir, "bench.lua", NULL);
	g_autofree gchar *t = g_strdup_printf ("-t%u", threads);
	g_autofree gchar *c = g_strdup_printf ("-c%u", conns);
	g_autofree gchar *d = g_strdup_printf ("-d%us", seconds);
	g_autofree gchar *stdout_buf = NULL;
	g_autofree gchar *stderr_buf = NULL;
	g_auto (GStrv) env = g_environ_setenv (g_get_environ (), "PPN_BENCH_TOKEN", token, TRUE);
	const gchar *argv[] = {"wrk", t, c, d, "--timeout", "10s", "-s", script, url, NULL};
	const gchar *line;
	gint status = -1;

	memset (out, 0, sizeof *out);
	if (!g_file_set_contents (script, ppn_bench_wrk_lua, -1, NULL))
		return FALSE;
	if (!g_spawn_sync (NULL, (gchar **)argv, env, G_SPAWN_SEARCH_PATH, NULL, NULL, &stdout_buf,
			   &stderr_buf, &status, NULL) ||
	    !g_spawn_check_wait_status (status, NULL) || (line = strstr (stdout_buf, "PPNBENCH ")) == NULL) {
		g_printerr ("wrk failed (is it installed? tools/install-deps): %s%s\n",
			    stdout_buf != NULL ? stdout_buf : "", stderr_buf != NULL ? stderr_buf : "");
		return FALSE;
	}
	if (sscanf (line, "PPNBENCH %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT " %lf %lf %lf", &out->requests,
		    &out->errors, &out->rps, &out->p50_ms, &out->p99_ms) != 5)
		return FALSE;
	/* non-2xx answers count as errors in summary.errors.status */
	return TRUE;
}
