#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Prometheus text exposition (format 0.0.4) of the fleet: request counts
 * and latencies per listener and route, and whatever the collectors add
 * at scrape time (VMs by state, nodes, gate queues, audit writes).
 * Main-loop only. */
typedef struct _PpnMetrics PpnMetrics;

/* a collector appends its families to @out when /metrics is scraped */
typedef void (*PpnMetricsCollector) (GString *out, gpointer user_data);

PpnMetrics *ppn_metrics_new (void);
void ppn_metrics_free (PpnMetrics *self);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (PpnMetrics, ppn_metrics_free)

/* @route is the route's pattern ("/v1/vms/{id}"), never the raw path, so
 * the label set stays small */
void ppn_metrics_observe_request (PpnMetrics *self,
				  const gchar *listener,
				  const gchar *method,
				  const gchar *route,
				  guint status,
				  gdouble seconds);
void ppn_metrics_add_collector (PpnMetrics *self, PpnMetricsCollector collector, gpointer user_data);
gchar *ppn_metrics_render (PpnMetrics *self);

/* helpers for collectors */
void ppn_metrics_family (GString *out, const gchar *name, const gchar *type, const gchar *help);
/* a latency histogram with the default buckets (1 ms to 10 s) */
typedef struct {
	guint64 buckets[14];
	guint64 count;
	gdouble sum;
} PpnHistogram;
void ppn_histogram_observe (PpnHistogram *h, gdouble seconds);
/* @labels: "" or 'a="x",b="y"' */
void ppn_histogram_render (GString *out, const gchar *name, const gchar *labels, const PpnHistogram *h);
gchar *ppn_metrics_escape (const gchar *value);
/* a request method as a label: the standard ones, anything else "other"
 * (a method is whatever a client sends) */
const gchar *ppn_metrics_method_name (const gchar *method);
/* @path as a label: the one of @routes it is, else NULL */
const gchar *ppn_metrics_route_name (const gchar *path, const gchar *const *routes);

G_END_DECLS
