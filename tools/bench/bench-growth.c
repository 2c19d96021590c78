/* bench-growth: how the cost of a request grows, and with what.
 *
 * Listing (GET /v1/vms of tenant alice) against alice's own VM count
 * (10, 100, 1000) with the fleet's total fixed at 100,000 records, and
 * against the other tenants' count (1k, 10k, 100k) with alice's fixed at
 * 100: the second must stay flat. Each row is a ppn-fleetd started on
 * its own fixture (tools/bench/bench-util.c), keep-alive on so that the
 * figure is the server's work and not a TLS handshake, and gives wrk's
 * requests/s and p99 for the first page (the default limit, 100) and
 * for limit=500, and the time to walk alice's whole list page by page
 * (limit=500, one connection, median of 10). The ratio is to the first
 * row of each sweep. Then the restore time against the total records
 * (bench-restore's table).
 *
 *   tools/bench/bench-growth [-d SECONDS] [-c CONNS] [--no-restore]
 */
#include "config.h"

#include <string.h>

#include "bench-util.h"

static gint duration = 5;
static gint conns = 4;
static gboolean no_restore = FALSE;

typedef struct {
	PpnBenchWrk page;
	PpnBenchWrk big;
	gdouble walk_ms;
	guint listed;
} GrowthRow;

/* every page of alice's list, limit=500; the VMs seen */
static guint
walk (PpnTestFleet *fleet)
{
	g_autofree gchar *token = NULL;
	guint seen = 0;

	while (TRUE) {
		g_autofree gchar *path = token != NULL
					     ? g_strdup_printf ("/v1/vms?limit=500&page_token=%s", token)
					     : g_strdup ("/v1/vms?limit=500");
		guint status = 0;
		g_autoptr (JsonNode) page =
		    ppn_test_fleet_call (fleet, fleet->token1, "GET", path, NULL, &status, NULL);
		JsonObject *o;

		if (status != 200)
			g_error ("GET %s: %u", path, status);
		o = json_node_get_object (page);
		seen += json_array_get_length (json_object_get_array_member (o, "vms"));
		g_free (token);
		token = g_strdup (json_object_get_string_member_with_default (o, "next_page_token", NULL));
		if (token == NULL)
			return seen;
	}
}

static void
measure (guint own, guint others, GrowthRow *r)
{
	g_autoptr (PpnTestFleet) fleet =
	    ppn_bench_start_own_fleet (own, own + others, "http-keep-alive=yes", 3600);
	g_autofree gchar *page_url = g_strconcat (fleet->url, "/v1/vms", NULL);
	g_autofree gchar *big_url = g_strconcat (fleet->url, "/v1/vms?limit=500", NULL);
	g_autoptr (GArray) walks = g_array_new (FALSE, FALSE, sizeof (gdouble));
	PpnBenchWrk warm;

	/* a first run warms caches, the allocator and wrk itself up */
	ppn_bench_wrk (fleet->dir, page_url, fleet->token1, 1, (guint)conns, 1, &warm);
	if (!ppn_bench_wrk (fleet->dir, page_url, fleet->token1, 1, (guint)conns, (guint)duration,
			    &r->page) ||
	    !ppn_bench_wrk (fleet->dir, big_url, fleet->token1, 1, (guint)conns, (guint)duration, &r->big))
		g_error ("wrk failed");
	for (guint i = 0; i < 10; i++) {
		gint64 t0 = g_get_monotonic_time ();
		gdouble ms;
		r->listed = walk (fleet);
		ms = (g_get_monotonic_time () - t0) / 1000.0;
		g_array_append_val (walks, ms);
	}
	r->walk_ms = ppn_bench_percentile (walks, 0.5);
	if (r->listed != own)
		g_error ("alice listed %u VMs, not %u", r->listed, own);
}

static void
print_row (guint own, guint others, const GrowthRow *r, const GrowthRow *ref)
{
	g_print ("%8u %8u %10.0f %8.2f %10.0f %8.2f %10.1f   %6.2f %6.2f %6.2f\n", own, others, r->page.rps,
		 r->page.p99_ms, r->big.rps, r->big.p99_ms, r->walk_ms, ref->page.rps / r->page.rps,
		 ref->big.rps / r->big.rps, r->walk_ms / ref->walk_ms);
}

static void
header (const gchar *title)
{
	g_print ("\n%s\n", title);
	g_print ("%8s %8s %10s %8s %10s %8s %10s   %s\n", "own", "others", "page rps", "p99 ms", "500 rps",
		 "p99 ms", "walk ms", "cost ratio to 1st row (page, 500, walk)");
}

int
main (int argc, char **argv)
{
	const GOptionEntry entries[] = {
	    {"duration", 'd', 0, G_OPTION_ARG_INT, &duration, "Seconds of each wrk run (default 5)", "S"},
	    {"connections", 'c', 0, G_OPTION_ARG_INT, &conns, "wrk connections (default 4)", "N"},
	    {"no-restore", 0, 0, G_OPTION_ARG_NONE, &no_restore, "Skip the restore table", NULL},
	    {NULL},
	};
	static const guint owns[] = {10, 100, 1000};
	static const guint others[] = {1000, 10000, 100000};
	const gchar *restore_sizes[] = {"1000", "10000", "100000", NULL};
	g_autoptr (GOptionContext) ctx = g_option_context_new (NULL);
	g_autoptr (GError) error = NULL;
	GrowthRow rows[3];

	g_option_context_add_main_entries (ctx, entries, NULL);
	if (!g_option_context_parse (ctx, &argc, &argv, &error) || duration < 1 || conns < 1) {
		g_printerr ("bench-growth: %s\n", error != NULL ? error->message : "bad arguments");
		return 2;
	}
	ppn_bench_print_machine ();
	g_print ("wrk -t1 -c%d -d%ds per figure, http-keep-alive=yes; cost ratio = 1st row's rps / this row's"
		 " (walk: time / 1st row's)\n",
		 conns, duration);

	header ("listing against alice's own VMs, 100,000 records in all");
	for (guint i = 0; i < G_N_ELEMENTS (owns); i++) {
		measure (owns[i], 100000 - owns[i], &rows[i]);
		print_row (owns[i], 100000 - owns[i], &rows[i], &rows[0]);
	}
	header ("listing against the other tenants' VMs, alice has 100");
	for (guint i = 0; i < G_N_ELEMENTS (others); i++) {
		measure (100, others[i], &rows[i]);
		print_row (100, others[i], &rows[i], &rows[0]);
	}
	if (!no_restore) {
		g_print ("\nrestore against the records in all (bench-restore)\n");
		ppn_bench_restore_table (restore_sizes);
	}
	ppn_bench_print_load ("at the end");
	return 0;
}
