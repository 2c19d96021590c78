#pragma once

#include <json-glib/json-glib.h>

G_BEGIN_DECLS

/* one catalog entry; every path is absolute and inside the image's dir */
typedef struct {
	gchar *name;
	gchar *description;
	gchar *dir;
	gchar *kernel; /* kernel boot: kernel (+ initrd, cmdline) */
	gchar *initrd;
	gchar *cmdline;
	gchar *disk; /* disk boot: a qcow2 backing file */
	gchar *disk_format;
} PpnImage;

PpnImage *ppn_image_load (const gchar *dir, GError **error);
PpnImage *ppn_image_copy (const PpnImage *image);
void ppn_image_free (PpnImage *image);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (PpnImage, ppn_image_free)

/* a directory with one subdirectory per image, each with an image.conf;
 * safe to call from any thread */
typedef struct _PpnImageCatalog PpnImageCatalog;

PpnImageCatalog *ppn_image_catalog_new (const gchar *dir);
void ppn_image_catalog_free (PpnImageCatalog *self);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (PpnImageCatalog, ppn_image_catalog_free)

void ppn_image_catalog_rescan (PpnImageCatalog *self);
guint ppn_image_catalog_get_count (PpnImageCatalog *self);
PpnImage *ppn_image_catalog_lookup (PpnImageCatalog *self, const gchar *name, GError **error);
JsonNode *ppn_image_catalog_to_json (PpnImageCatalog *self);

G_END_DECLS
