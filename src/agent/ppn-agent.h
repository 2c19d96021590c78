#pragma once

#include <gio/gio.h>

#include "ppn-agent-config.h"

G_BEGIN_DECLS

/* the daemon: owns the catalog, the domain manager, the API server and
 * the heartbeat, and the order they start in */
#define PPN_TYPE_AGENT (ppn_agent_get_type ())
G_DECLARE_FINAL_TYPE (PpnAgent, ppn_agent, PPN, AGENT, GObject)

/* takes @config */
PpnAgent *ppn_agent_new (PpnAgentConfig *config, GError **error);
void ppn_agent_start (PpnAgent *self);
void ppn_agent_stop (PpnAgent *self);
void ppn_agent_reload (PpnAgent *self);
gboolean ppn_agent_get_failed (PpnAgent *self, GError **error);

G_END_DECLS
