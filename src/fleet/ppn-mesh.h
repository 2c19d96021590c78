#pragma once

#include <gio/gio.h>

#include "ppn-controller.h"
#include "ppn-metrics.h"

G_BEGIN_DECLS

/* the mesh listener: mutual TLS, fleet CA only; agents heartbeat here */
#define PPN_TYPE_MESH (ppn_mesh_get_type ())
G_DECLARE_FINAL_TYPE (PpnMesh, ppn_mesh, PPN, MESH, GObject)

PpnMesh *ppn_mesh_new (PpnController *controller,
		       GTlsCertificate *cert,
		       GTlsDatabase *ca,
		       const gchar *listen,
		       GError **error);
/* serves @metrics (which must outlive the mesh) at GET /metrics and
 * observes every mesh request into it */
void ppn_mesh_set_metrics (PpnMesh *self, PpnMetrics *metrics);
void ppn_mesh_set_keep_alive (PpnMesh *self, gboolean keep_alive);
guint16 ppn_mesh_get_port (PpnMesh *self);

G_END_DECLS
