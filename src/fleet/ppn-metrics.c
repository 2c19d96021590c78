#include "config.h"

#define G_LOG_DOMAIN "ppn-fleet"

#include <string.h>

#include "ppn-metrics.h"

static const gdouble ppn_histogram_bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
					       0.25,  0.5,    1.0,   2.5,  5.0,   10.0};
G_STATIC_ASSERT (G_N_ELEMENTS (ppn_histogram_bounds) + 1 == G_N_ELEMENTS (((PpnHistogram *)NULL)->buckets));

typedef struct {
	PpnMetricsCollector collector;
	gpointer user_data;
} PpnMetricsCollectorEntry;

struct _PpnMetrics {
	GHashTable *requests;  /* "listener\tmethod\troute\tstatus" -> guint64 * */
	GHashTable *latencies; /* "listener\troute" -> PpnHistogram */
	GArray *collectors;
};

PpnMetrics *
ppn_metrics_new (void)
{
	PpnMetrics *self = g_new0 (PpnMetrics, 1);

	self->requests = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
	self->latencies = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
	self->collectors = g_array_new (FALSE, FALSE, sizeof (PpnMetricsCollectorEntry));
	return self;
}

void
ppn_metrics_free (PpnMetrics *self)
{
	if (self == NULL)
		return;
	g_hash_table_unref (self->requests);
	g_hash_table_unref (self->latencies);
	g_array_unref (self->collectors);
	g_free (self);
}

void
ppn_histogram_observe (PpnHistogram *h, gdouble seconds)
{
	guint i = 0;

	while (i < G_N_ELEMENTS (ppn_histogram_bounds) && seconds > ppn_histogram_bounds[i])
		i++;
	h->buckets[i]++;
	h->count++;
	h->sum += seconds;
}

void
ppn_histogram_render (GString *out, const gchar *name, const gchar *labels, const PpnHistogram *h)
{
	const gchar *sep = labels[0] != '\0' ? "," : "";
	guint64 cumulative = 0;

	for (guint i = 0; i < G_N_ELEMENTS (h->buckets); i++) {
		gchar le[G_ASCII_DTOSTR_BUF_SIZE];
		cumulative += h->buckets[i];
		if (i < G_N_ELEMENTS (ppn_histogram_bounds))
			g_ascii_formatd (le, sizeof le, "%g", ppn_histogram_bounds[i]);
		else
			g_strlcpy (le, "+Inf", sizeof le);
		g_string_append_printf (out, "%s_bucket{%s%sle=\"%s\"} %" G_GUINT64_FORMAT "\n", name, labels, sep, le,
					cumulative);
	}
	{
		gchar sum[G_ASCII_DTOSTR_BUF_SIZE];
		g_autofree gchar *braced = labels[0] != '\0' ? g_strdup_printf ("{%s}", labels) : g_strdup ("");
		g_ascii_dtostr (sum, sizeof sum, h->sum);
		g_string_append_printf (out, "%s_sum%s %s\n%s_count%s %" G_GUINT64_FORMAT "\n", name, braced, sum, name,
					braced, h->count);
	}
}

gchar *
ppn_metrics_escape (const gchar *value)
{
	GString *out = g_string_new (NULL);

	for (const gchar *p = value; *p != '\0'; p++) {
		if (*p == '\\' || *p == '"')
			g_string_append_c (out, '\\');
		if (*p == '\n')
			g_string_append (out, "\\n");
		else
			g_string_append_c (out, *p);
	}
	return g_string_free (out, FALSE);
}

const gchar *
ppn_metrics_route_name (const gchar *path, const gchar *const *routes)
{
	for (guint i = 0; routes[i] != NULL; i++) {
		if (g_strcmp0 (path, routes[i]) == 0)
			return routes[i];
	}
	return NULL;
}

const gchar *
ppn_metrics_method_name (const gchar *method)
{
	static const gchar *const known[] = {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", NULL};
	const gchar *name = ppn_metrics_route_name (method, known);

	return name != NULL ? name : "other";
}

void
ppn_metrics_family (GString *out, const gchar *name, const gchar *type, const gchar *help)
{
	g_string_append_printf (out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void
ppn_metrics_observe_request (PpnMetrics *self,
			     const gchar *listener,
			     const gchar *method,
			     const gchar *route,
			     guint status,
			     gdouble seconds)
{
	g_autofree gchar *key = g_strdup_printf ("%s\t%s\t%s\t%u", listener, ppn_metrics_method_name (method), route,
						 status);
	g_autofree gchar *lat_key = g_strdup_printf ("%s\t%s", listener, route);
	guint64 *count = g_hash_table_lookup (self->requests, key);
	PpnHistogram *h = g_hash_table_lookup (self->latencies, lat_key);

	if (count == NULL) {
		count = g_new0 (guint64, 1);
		g_hash_table_insert (self->requests, g_steal_pointer (&key), count);
	}
	(*count)++;
	if (h == NULL) {
		h = g_new0 (PpnHistogram, 1);
		g_hash_table_insert (self->latencies, g_steal_pointer (&lat_key), h);
	}
	ppn_histogram_observe (h, seconds);
}

void
ppn_metrics_add_collector (PpnMetrics *self, PpnMetricsCollector collector, gpointer user_data)
{
	PpnMetricsCollectorEntry entry = {collector, user_data};

	g_array_append_val (self->collectors, entry);
}

static gint
ppn_metrics_cmp (gconstpointer a, gconstpointer b)
{
	return strcmp (*(const gchar *const *)a, *(const gchar *const *)b);
}

/* the keys of @table, sorted, so scrapes are stable */
static GPtrArray *
ppn_metrics_sorted_keys (GHashTable *table)
{
	GPtrArray *keys = g_ptr_array_new ();
	GHashTableIter iter;
	gpointer key;

	g_hash_table_iter_init (&iter, table);
	while (g_hash_table_iter_next (&iter, &key, NULL))
		g_ptr_array_add (keys, key);
	g_ptr_array_sort (keys, ppn_metrics_cmp);
	return keys;
}

gchar *
ppn_metrics_render (PpnMetrics *self)
{
	GString *out = g_string_new (NULL);
	g_autoptr(GPtrArray) keys = NULL;

	ppn_metrics_family (out, "ppn_http_requests_total", "counter",
			    "HTTP requests answered, by listener, method, route and status.");
	keys = ppn_metrics_sorted_keys (self->requests);
	for (guint i = 0; i < keys->len; i++) {
		const gchar *key = g_ptr_array_index (keys, i);
		g_auto(GStrv) f = g_strsplit (key, "\t", 4);
		/* listeners, methods and routes are ours already; escaped all the same */
		g_autofree gchar *route = ppn_metrics_escape (f[2]);
		g_string_append_printf (out,
					"ppn_http_requests_total{listener=\"%s\",method=\"%s\",route=\"%s\",status=\"%s\"}"
					" %" G_GUINT64_FORMAT "\n",
					f[0], f[1], route, f[3], *(guint64 *)g_hash_table_lookup (self->requests, key));
	}
	g_clear_pointer (&keys, g_ptr_array_unref);
	ppn_metrics_family (out, "ppn_http_request_duration_seconds", "histogram",
			    "Time from a request's headers to its answer, by listener and route.");
	keys = ppn_metrics_sorted_keys (self->latencies);
	for (guint i = 0; i < keys->len; i++) {
		const gchar *key = g_ptr_array_index (keys, i);
		g_auto(GStrv) f = g_strsplit (key, "\t", 2);
		g_autofree gchar *route = ppn_metrics_escape (f[1]);
		g_autofree gchar *labels = g_strdup_printf ("listener=\"%s\",route=\"%s\"", f[0], route);
		ppn_histogram_render (out, "ppn_http_request_duration_seconds", labels,
				      g_hash_table_lookup (self->latencies, key));
	}
	for (guint i = 0; i < self->collectors->len; i++) {
		PpnMetricsCollectorEntry *e = &g_array_index (self->collectors, PpnMetricsCollectorEntry, i);
		e->collector (out, e->user_data);
	}
	return g_string_free (out, FALSE);
}
