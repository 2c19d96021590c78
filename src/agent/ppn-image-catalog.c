#include "config.h"

#define G_LOG_DOMAIN "ppn-agent"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ppn-config.h"
#include "ppn-bytes.h"
#include "ppn-error.h"
#include "ppn-forward.h"
#include "ppn-i18n.h"
#include "ppn-image-catalog.h"

#define PPN_IMAGE_CONF "image.conf"
#define PPN_IMAGE_DESCRIPTION_MAX 256
#define PPN_IMAGE_CMDLINE_MAX 1024

/* the parts of the qcow2 header (docs/interop/qcow2.txt in QEMU) that say
 * whether opening the image makes QEMU open another file; big-endian */
#define PPN_QCOW2_MAGIC 0x514649fbu /* "QFI\xfb" */
#define PPN_QCOW2_OFF_VERSION 4
#define PPN_QCOW2_OFF_BACKING_OFFSET 8
#define PPN_QCOW2_OFF_BACKING_SIZE 16
#define PPN_QCOW2_OFF_CLUSTER_BITS 20
#define PPN_QCOW2_OFF_INCOMPAT 72
#define PPN_QCOW2_OFF_HEADER_LENGTH 100
#define PPN_QCOW2_V2_HEADER_LENGTH 72
#define PPN_QCOW2_V3_HEADER_LENGTH 104
#define PPN_QCOW2_INCOMPAT_DATA_FILE (G_GUINT64_CONSTANT (1) << 2)
#define PPN_QCOW2_EXT_END 0x00000000u
#define PPN_QCOW2_EXT_DATA_FILE 0x44415441u
#define PPN_QCOW2_MIN_CLUSTER_BITS 9
#define PPN_QCOW2_MAX_CLUSTER_BITS 21

struct _PpnImageCatalog {
	GMutex lock;
	gchar *dir;
	GPtrArray *images; /* of PpnImage, sorted by name */
};

void
ppn_image_free (PpnImage *image)
{
	if (image == NULL)
		return;
	g_free (image->name);
	g_free (image->description);
	g_free (image->dir);
	g_free (image->kernel);
	g_free (image->initrd);
	g_free (image->cmdline);
	g_free (image->disk);
	g_free (image->disk_format);
	g_free (image);
}

PpnImage *
ppn_image_copy (const PpnImage *image)
{
	PpnImage *copy;

	g_return_val_if_fail (image != NULL, NULL);
	copy = g_new0 (PpnImage, 1);
	copy->name = g_strdup (image->name);
	copy->description = g_strdup (image->description);
	copy->dir = g_strdup (image->dir);
	copy->kernel = g_strdup (image->kernel);
	copy->initrd = g_strdup (image->initrd);
	copy->cmdline = g_strdup (image->cmdline);
	copy->disk = g_strdup (image->disk);
	copy->disk_format = g_strdup (image->disk_format);
	return copy;
}

/* text that reaches the domain XML or the tenants: UTF-8 without control
 * characters (the XML writer escapes markup, not control characters) */
static gboolean
ppn_image_check_text (const gchar *conf, const gchar *key, const gchar *value, gsize max, GError **error)
{
	if (strlen (value) > max || !g_utf8_validate (value, -1, NULL)) {
		g_set_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
			     _("%s: '%s' must be valid UTF-8 of at most %" G_GSIZE_FORMAT " bytes"),
			     conf, key, max);
		return FALSE;
	}
	for (const gchar *p = value; *p != '\0'; p = g_utf8_next_char (p)) {
		if (g_unichar_iscntrl (g_utf8_get_char (p))) {
			g_set_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
				     _("%s: '%s' must not contain control characters"), conf, key);
			return FALSE;
		}
	}
	return TRUE;
}

/* a file named relative to the image's dir, which must stay inside it
 * once every symlink is resolved, and be a regular file */
static gchar *
ppn_image_resolve (const gchar *conf, const gchar *real_dir, const gchar *key, const gchar *rel, GError **error)
{
	g_auto(GStrv) parts = NULL;
	g_autofree gchar *joined = NULL;
	g_autofree gchar *prefix = NULL;
	g_autofree gchar *real = NULL;
	struct stat st;

	if (g_path_is_absolute (rel)) {
		g_set_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
			     _("%s: '%s' must be a path relative to the image's directory"), conf, key);
		return NULL;
	}
	parts = g_strsplit (rel, "/", -1);
	for (guint i = 0; parts[i] != NULL; i++) {
		if (g_strcmp0 (parts[i], "..") == 0) {
			g_set_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
				     _("%s: '%s' must not contain '..'"), conf, key);
			return NULL;
		}
	}
	joined = g_build_filename (real_dir, rel, NULL);
	real = realpath (joined, NULL);
	if (real == NULL) {
		g_set_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
			     _("%s: '%s' names %s: %s"), conf, key, joined, g_strerror (errno));
		return NULL;
	}
	prefix = g_strconcat (real_dir, G_DIR_SEPARATOR_S, NULL);
	if (!g_str_has_prefix (real, prefix)) {
		g_set_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
			     _("%s: '%s' resolves to %s, outside the image's directory"), conf, key, real);
		return NULL;
	}
	if (stat (real, &st) != 0 || !S_ISREG (st.st_mode)) {
		g_set_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
			     _("%s: '%s' is not a regular file"), conf, key);
		return NULL;
	}
	return g_steal_pointer (&real);
}

/* up to @len bytes from the start of @path; fewer only at its end */
static GBytes *
ppn_image_read_head (const gchar *path, gsize len, GError **error)
{
	g_autofree guint8 *buf = g_malloc (len);
	gsize got = 0;
	int fd;

	fd = g_open (path, O_RDONLY | O_CLOEXEC | O_NOCTTY, 0);
	if (fd < 0) {
		g_set_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST, _("Cannot open %s: %s"), path,
			     g_strerror (errno));
		return NULL;
	}
	while (got < len) {
		gssize n = read (fd, buf + got, len - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int saved = errno;
			g_set_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST, _("Cannot read %s: %s"), path,
				     g_strerror (saved));
			close (fd);
			return NULL;
		}
		if (n == 0)
			break;
		got += (gsize)n;
	}
	close (fd);
	return g_bytes_new_take (g_steal_pointer (&buf), got);
}

/* a catalog disk is handed to QEMU as qcow2, read by a guest nobody
 * trusts: it must be qcow2 (a raw file labelled qcow2 would let its
 * contents pose as a header), and opening it must not make QEMU open
 * any other file, neither a backing file nor an external data file */
static gboolean
ppn_image_check_qcow2 (const gchar *conf, const gchar *path, GError **error)
{
	g_autoptr(GBytes) head = NULL;
	g_autoptr(GBytes) cluster = NULL;
	const guint8 *h;
	gsize len;
	guint32 version, cluster_bits, header_length;
	guint64 cluster_size;

	head = ppn_image_read_head (path, PPN_QCOW2_V3_HEADER_LENGTH, error);
	if (head == NULL) {
		g_prefix_error (error, "%s: ", conf);
		return FALSE;
	}
	h = g_bytes_get_data (head, &len);
	if (len < 4 || ppn_read_be32 (h) != PPN_QCOW2_MAGIC) {
		g_set_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
			     _("%s: disk %s is not a qcow2 image (no qcow2 magic)"), conf, path);
		return FALSE;
	}
	if (len < 8) {
		g_set_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
			     _("%s: disk %s has a truncated qcow2 header"), conf, path);
		return FALSE;
	}
	version = ppn_read_be32 (h + PPN_QCOW2_OFF_VERSION);
	if (version != 2 && version != 3) {
		g_set_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
			     _("%s: disk %s is qcow2 version %u; only versions 2 and 3 are accepted"), conf, path,
			     version);
		return FALSE;
	}
	if (len < (version == 2 ? PPN_QCOW2_V2_HEADER_LENGTH : PPN_QCOW2_V3_HEADER_LENGTH)) {
		g_set_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
			     _("%s: disk %s has a truncated qcow2 header"), conf, path);
		return FALSE;
	}
	if (ppn_read_be64 (h + PPN_QCOW2_OFF_BACKING_OFFSET) != 0 ||
	    ppn_read_be32 (h + PPN_QCOW2_OFF_BACKING_SIZE) != 0) {
		g_set_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
			     _("%s: disk %s names a backing file; a catalog image must stand alone"), conf, path);
		return FALSE;
	}
	if (version == 3 && (ppn_read_be64 (h + PPN_QCOW2_OFF_INCOMPAT) & PPN_QCOW2_INCOMPAT_DATA_FILE) != 0) {
		g_set_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
			     _("%s: disk %s keeps its data in an external data file"), conf, path);
		return FALSE;
	}
	cluster_bits = ppn_read_be32 (h + PPN_QCOW2_OFF_CLUSTER_BITS);
	if (cluster_bits < PPN_QCOW2_MIN_CLUSTER_BITS || cluster_bits > PPN_QCOW2_MAX_CLUSTER_BITS) {
		g_set_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
			     _("%s: disk %s has an invalid qcow2 cluster size"), conf, path);
		return FALSE;
	}
	cluster_size = G_GUINT64_CONSTANT (1) << cluster_bits;
	header_length = version == 2 ? PPN_QCOW2_V2_HEADER_LENGTH : ppn_read_be32 (h + PPN_QCOW2_OFF_HEADER_LENGTH);
	if (header_length < (version == 2 ? PPN_QCOW2_V2_HEADER_LENGTH : PPN_QCOW2_V3_HEADER_LENGTH) ||
	    header_length > cluster_size) {
		g_set_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
			     _("%s: disk %s has an invalid qcow2 header length"), conf, path);
		return FALSE;
	}

	/* the header extensions, which QEMU reads up to the end of the first
	 * cluster or an end marker; one of them names an external data file */
	cluster = ppn_image_read_head (path, (gsize)cluster_size, error);
	if (cluster == NULL) {
		g_prefix_error (error, "%s: ", conf);
		return FALSE;
	}
	h = g_bytes_get_data (cluster, &len);
	for (guint64 off = header_length; off < cluster_size;) {
		guint32 type, ext_len;

		if (off + 8 > len) {
			g_set_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
				     _("%s: disk %s ends inside its qcow2 header extensions"), conf, path);
			return FALSE;
		}
		type = ppn_read_be32 (h + off);
		ext_len = ppn_read_be32 (h + off + 4);
		if (type == PPN_QCOW2_EXT_END)
			break;
		if (type == PPN_QCOW2_EXT_DATA_FILE) {
			g_set_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
				     _("%s: disk %s names an external data file"), conf, path);
			return FALSE;
		}
		off += 8;
		if (ext_len > cluster_size - off || off + ext_len > len) {
			g_set_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
				     _("%s: disk %s has a qcow2 header extension that overruns the header"), conf,
				     path);
			return FALSE;
		}
		off += ((guint64)ext_len + 7) & ~G_GUINT64_CONSTANT (7);
	}
	return TRUE;
}

/* @dir is one catalog entry: DIR/image.conf, named after DIR */
PpnImage *
ppn_image_load (const gchar *dir, GError **error)
{
	static const gchar *const groups[] = {"image", NULL};
	static const gchar *const image_keys[] = {"name", "description", "kernel", "initrd", "cmdline",
						  "disk", "disk-format", NULL};
	static const gchar *const *const keys[] = {image_keys, NULL};
	g_autofree gchar *real_dir = NULL;
	g_autofree gchar *conf = NULL;
	g_autofree gchar *base = NULL;
	g_autofree gchar *kernel = NULL;
	g_autofree gchar *initrd = NULL;
	g_autofree gchar *disk = NULL;
	g_autoptr(GKeyFile) kf = NULL;
	g_autoptr(PpnImage) image = g_new0 (PpnImage, 1);
	g_autoptr(GError) local = NULL;

	g_return_val_if_fail (dir != NULL, NULL);
	real_dir = realpath (dir, NULL);
	if (real_dir == NULL) {
		g_set_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
			     _("Cannot resolve %s: %s"), dir, g_strerror (errno));
		return NULL;
	}
	conf = g_build_filename (real_dir, PPN_IMAGE_CONF, NULL);
	kf = ppn_config_load (conf, error);
	if (kf == NULL)
		return NULL;
	if (!ppn_config_check_keys (kf, conf, groups, keys, error))
		return NULL;

	image->dir = g_strdup (real_dir);
	image->name = ppn_config_get_string (kf, "image", "name", NULL);
	if (!ppn_name_validate ("name", image->name, &local)) {
		g_set_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST, "%s: %s", conf, local->message);
		return NULL;
	}
	base = g_path_get_basename (dir);
	if (g_strcmp0 (base, image->name) != 0) {
		g_set_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
			     _("%s: name '%s' differs from the directory name '%s'"), conf, image->name, base);
		return NULL;
	}
	image->description = ppn_config_get_string (kf, "image", "description", "");
	if (!ppn_image_check_text (conf, "description", image->description, PPN_IMAGE_DESCRIPTION_MAX, error))
		return NULL;

	kernel = ppn_config_get_string (kf, "image", "kernel", NULL);
	initrd = ppn_config_get_string (kf, "image", "initrd", NULL);
	disk = ppn_config_get_string (kf, "image", "disk", NULL);
	image->cmdline = ppn_config_get_string (kf, "image", "cmdline", NULL);
	image->disk_format = ppn_config_get_string (kf, "image", "disk-format", NULL);

	if ((kernel == NULL) == (disk == NULL)) {
		g_set_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
			     _("%s: exactly one of 'kernel' and 'disk' must be set"), conf);
		return NULL;
	}
	if (kernel != NULL) {
		if (image->disk_format != NULL) {
			g_set_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
				     _("%s: 'disk-format' needs 'disk'"), conf);
			return NULL;
		}
		image->kernel = ppn_image_resolve (conf, real_dir, "kernel", kernel, error);
		if (image->kernel == NULL)
			return NULL;
		if (initrd != NULL) {
			image->initrd = ppn_image_resolve (conf, real_dir, "initrd", initrd, error);
			if (image->initrd == NULL)
				return NULL;
		}
		if (image->cmdline != NULL &&
		    !ppn_image_check_text (conf, "cmdline", image->cmdline, PPN_IMAGE_CMDLINE_MAX, error))
			return NULL;
	} else {
		if (initrd != NULL || image->cmdline != NULL) {
			g_set_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
				     _("%s: 'initrd' and 'cmdline' need 'kernel'"), conf);
			return NULL;
		}
		if (g_strcmp0 (image->disk_format, "qcow2") != 0) {
			g_set_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
				     _("%s: 'disk-format' must be qcow2"), conf);
			return NULL;
		}
		image->disk = ppn_image_resolve (conf, real_dir, "disk", disk, error);
		if (image->disk == NULL)
			return NULL;
		if (!ppn_image_check_qcow2 (conf, image->disk, error))
			return NULL;
	}
	return g_steal_pointer (&image);
}

PpnImageCatalog *
ppn_image_catalog_new (const gchar *dir)
{
	PpnImageCatalog *self;

	g_return_val_if_fail (dir != NULL, NULL);
	self = g_new0 (PpnImageCatalog, 1);
	g_mutex_init (&self->lock);
	self->dir = g_strdup (dir);
	self->images = g_ptr_array_new_with_free_func ((GDestroyNotify)ppn_image_free);
	return self;
}

void
ppn_image_catalog_free (PpnImageCatalog *self)
{
	if (self == NULL)
		return;
	g_mutex_clear (&self->lock);
	g_free (self->dir);
	g_ptr_array_unref (self->images);
	g_free (self);
}

static gint
ppn_image_compare (gconstpointer a, gconstpointer b)
{
	const PpnImage *ia = *(const PpnImage *const *)a;
	const PpnImage *ib = *(const PpnImage *const *)b;

	return g_strcmp0 (ia->name, ib->name);
}

/* a bad entry is skipped with a warning: one broken image must not take
 * the others away */
static GPtrArray *
ppn_image_catalog_scan (const gchar *dir)
{
	g_autoptr(GPtrArray) images = g_ptr_array_new_with_free_func ((GDestroyNotify)ppn_image_free);
	g_autoptr(GDir) d = NULL;
	g_autoptr(GError) error = NULL;
	const gchar *entry;

	d = g_dir_open (dir, 0, &error);
	if (d == NULL) {
		g_warning (_("Image catalog %s cannot be read: %s"), dir, error->message);
		return g_steal_pointer (&images);
	}
	while ((entry = g_dir_read_name (d)) != NULL) {
		g_autofree gchar *path = g_build_filename (dir, entry, NULL);
		g_autoptr(PpnImage) image = NULL;
		g_autoptr(GError) local = NULL;

		if (entry[0] == '.' || !g_file_test (path, G_FILE_TEST_IS_DIR))
			continue;
		image = ppn_image_load (path, &local);
		if (image == NULL) {
			g_warning (_("Skipping image %s: %s"), entry, local->message);
			continue;
		}
		g_ptr_array_add (images, g_steal_pointer (&image));
	}
	g_ptr_array_sort (images, ppn_image_compare);
	return g_steal_pointer (&images);
}

void
ppn_image_catalog_rescan (PpnImageCatalog *self)
{
	g_autoptr(GPtrArray) images = NULL;
	g_autoptr(GMutexLocker) locker = NULL;

	g_return_if_fail (self != NULL);
	images = ppn_image_catalog_scan (self->dir);
	locker = g_mutex_locker_new (&self->lock);
	g_ptr_array_unref (self->images);
	self->images = g_steal_pointer (&images);
	g_debug ("image catalog %s: %u images", self->dir, self->images->len);
}

guint
ppn_image_catalog_get_count (PpnImageCatalog *self)
{
	g_autoptr(GMutexLocker) locker = NULL;

	g_return_val_if_fail (self != NULL, 0);
	locker = g_mutex_locker_new (&self->lock);
	return self->images->len;
}

static PpnImage *
ppn_image_catalog_find (PpnImageCatalog *self, const gchar *name)
{
	g_autoptr(GMutexLocker) locker = g_mutex_locker_new (&self->lock);

	for (guint i = 0; i < self->images->len; i++) {
		PpnImage *image = g_ptr_array_index (self->images, i);
		if (g_strcmp0 (image->name, name) == 0)
			return ppn_image_copy (image);
	}
	return NULL;
}

/* by name only; an unknown name triggers one rescan, so an image added
 * to the directory is found without a SIGHUP */
PpnImage *
ppn_image_catalog_lookup (PpnImageCatalog *self, const gchar *name, GError **error)
{
	PpnImage *image;

	g_return_val_if_fail (self != NULL, NULL);
	if (!ppn_name_validate ("image", name, error))
		return NULL;
	image = ppn_image_catalog_find (self, name);
	if (image != NULL)
		return image;
	ppn_image_catalog_rescan (self);
	image = ppn_image_catalog_find (self, name);
	if (image == NULL)
		g_set_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST, _("Unknown image '%s'"), name);
	return image;
}

/* [{name, description}] for the heartbeat */
JsonNode *
ppn_image_catalog_to_json (PpnImageCatalog *self)
{
	g_autoptr(GMutexLocker) locker = NULL;
	g_autoptr(JsonArray) array = json_array_new ();
	JsonNode *node = json_node_new (JSON_NODE_ARRAY);

	g_return_val_if_fail (self != NULL, NULL);
	locker = g_mutex_locker_new (&self->lock);
	for (guint i = 0; i < self->images->len; i++) {
		PpnImage *image = g_ptr_array_index (self->images, i);
		JsonObject *obj = json_object_new ();

		json_object_set_string_member (obj, "name", image->name);
		json_object_set_string_member (obj, "description", image->description);
		json_array_add_object_element (array, obj);
	}
	json_node_set_array (node, array);
	return node;
}
