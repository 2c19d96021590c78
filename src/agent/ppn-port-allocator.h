#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* host ports for forwards, from a range on one address; safe to call
 * from any thread */
typedef struct _PpnPortAllocator PpnPortAllocator;

PpnPortAllocator *ppn_port_allocator_new (const gchar *address,
					  guint16 first,
					  guint16 last,
					  GError **error);
void ppn_port_allocator_free (PpnPortAllocator *self);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (PpnPortAllocator, ppn_port_allocator_free)

gboolean ppn_port_allocator_allocate (PpnPortAllocator *self,
				      const gchar *proto,
				      guint16 *port,
				      GError **error);
void ppn_port_allocator_release (PpnPortAllocator *self, guint16 port);
gboolean ppn_port_allocator_mark_used (PpnPortAllocator *self, guint16 port);
gboolean ppn_port_allocator_is_used (PpnPortAllocator *self, guint16 port);
guint ppn_port_allocator_reset (PpnPortAllocator *self, GHashTable *used);
guint ppn_port_allocator_count_free (PpnPortAllocator *self);
const gchar *ppn_port_allocator_get_address (PpnPortAllocator *self);

G_END_DECLS
