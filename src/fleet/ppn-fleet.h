#pragma once

#include <gio/gio.h>

#include "ppn-fleet-config.h"

G_BEGIN_DECLS

/* the daemon: owns the controller, the store, both listeners and the loop */
#define PPN_TYPE_FLEET (ppn_fleet_get_type ())
G_DECLARE_FINAL_TYPE (PpnFleet, ppn_fleet, PPN, FLEET, GObject)

PpnFleet *ppn_fleet_new (PpnFleetConfig *config);
gboolean ppn_fleet_start (PpnFleet *self, GError **error);
gboolean ppn_fleet_run (PpnFleet *self, GError **error);
void ppn_fleet_stop (PpnFleet *self);

G_END_DECLS
