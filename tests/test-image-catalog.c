#include "config.h"

#define G_LOG_DOMAIN "ppn-test"

#include <glib/gstdio.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>

#include "ppn-error.h"
#include "ppn-image-catalog.h"

typedef struct {
	gchar *dir;
	PpnImageCatalog *catalog;
} Fixture;

static void
write_file (const gchar *dir, const gchar *name, const gchar *contents)
{
	g_autofree gchar *path = g_build_filename (dir, name, NULL);
	g_autoptr(GError) error = NULL;

	g_assert_true (g_file_set_contents (path, contents, -1, &error));
	g_assert_no_error (error);
}

/* qemu-img ARGS... run in @dir */
static void
qemu_img (const gchar *dir, const gchar *first, ...)
{
	g_autoptr(GPtrArray) argv = g_ptr_array_new ();
	g_autoptr(GError) error = NULL;
	g_autofree gchar *err = NULL;
	gint status = 0;
	va_list ap;

	g_ptr_array_add (argv, (gpointer) "qemu-img");
	va_start (ap, first);
	for (const gchar *a = first; a != NULL; a = va_arg (ap, const gchar *))
		g_ptr_array_add (argv, (gpointer)a);
	va_end (ap);
	g_ptr_array_add (argv, NULL);
	g_assert_true (g_spawn_sync (dir, (gchar **)argv->pdata, NULL, G_SPAWN_SEARCH_PATH | G_SPAWN_STDOUT_TO_DEV_NULL,
				     NULL, NULL, NULL, &err, &status, &error));
	g_assert_no_error (error);
	if (!g_spawn_check_wait_status (status, NULL))
		g_error ("qemu-img %s failed: %s", first, err);
}

/* DIR/NAME/image.conf with @conf, plus a kernel and an initrd */
static gchar *
make_image (Fixture *fx, const gchar *name, const gchar *conf)
{
	g_autofree gchar *dir = g_build_filename (fx->dir, name, NULL);

	g_assert_cmpint (g_mkdir_with_parents (dir, 0755), ==, 0);
	write_file (dir, "vmlinuz", "kernel");
	write_file (dir, "initrd.img", "initrd");
	write_file (dir, "image.conf", conf);
	return g_steal_pointer (&dir);
}

static void
fixture_setup (Fixture *fx, gconstpointer data)
{
	g_autoptr(GError) error = NULL;

	fx->dir = g_dir_make_tmp ("ppn-catalog-XXXXXX", &error);
	g_assert_no_error (error);
	fx->catalog = ppn_image_catalog_new (fx->dir);
}

static void
fixture_teardown (Fixture *fx, gconstpointer data)
{
	g_autofree gchar *cmd = g_strdup_printf ("rm -rf '%s'", fx->dir);

	g_assert_cmpint (system (cmd), ==, 0);
	ppn_image_catalog_free (fx->catalog);
	g_free (fx->dir);
}

static void
test_good (Fixture *fx, gconstpointer data)
{
	g_autofree gchar *k = make_image (fx, "test-guest",
					  "[image]\nname=test-guest\ndescription=Tiny & <busybox>\n"
					  "kernel=vmlinuz\ninitrd=./initrd.img\ncmdline=console=ttyS0 quiet\n");
	g_autofree gchar *d = make_image (fx, "disk1",
					  "[image]\nname=disk1\ndisk=disk.qcow2\ndisk-format=qcow2\n");
	g_autoptr(GError) error = NULL;
	g_autoptr(PpnImage) image = NULL;
	g_autoptr(JsonNode) json = NULL;
	g_autofree gchar *expected_kernel = g_build_filename (k, "vmlinuz", NULL);
	g_autofree gchar *expected_disk = g_build_filename (d, "disk.qcow2", NULL);
	JsonArray *array;

	qemu_img (d, "create", "-q", "-f", "qcow2", "disk.qcow2", "16M", NULL);
	ppn_image_catalog_rescan (fx->catalog);
	g_assert_cmpuint (ppn_image_catalog_get_count (fx->catalog), ==, 2);
	image = ppn_image_catalog_lookup (fx->catalog, "test-guest", &error);
	g_assert_no_error (error);
	g_assert_cmpstr (image->kernel, ==, expected_kernel);
	g_assert_true (g_str_has_suffix (image->initrd, "/test-guest/initrd.img"));
	g_assert_cmpstr (image->cmdline, ==, "console=ttyS0 quiet");
	g_assert_null (image->disk);
	g_clear_pointer (&image, ppn_image_free);

	image = ppn_image_catalog_lookup (fx->catalog, "disk1", &error);
	g_assert_no_error (error);
	g_assert_cmpstr (image->disk, ==, expected_disk);
	g_assert_cmpstr (image->disk_format, ==, "qcow2");
	g_assert_null (image->kernel);

	json = ppn_image_catalog_to_json (fx->catalog);
	array = json_node_get_array (json);
	g_assert_cmpuint (json_array_get_length (array), ==, 2);
	g_assert_cmpstr (json_object_get_string_member (json_array_get_object_element (array, 0), "name"), ==, "disk1");
	g_assert_cmpstr (json_object_get_string_member (json_array_get_object_element (array, 1), "description"), ==,
			 "Tiny & <busybox>");
}

/* lookup by name only: no paths, nothing unknown */
static void
test_lookup_refused (Fixture *fx, gconstpointer data)
{
	g_autofree gchar *k = make_image (fx, "test-guest", "[image]\nname=test-guest\nkernel=vmlinuz\n");
	const gchar *names[] = {"../test-guest", "/etc", "test-guest/", "missing", "", NULL};

	ppn_image_catalog_rescan (fx->catalog);
	for (guint i = 0; names[i] != NULL; i++) {
		g_autoptr(GError) error = NULL;
		g_autoptr(PpnImage) image = ppn_image_catalog_lookup (fx->catalog, names[i], &error);
		g_assert_null (image);
		g_assert_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST);
	}
}

/* an image added later is found by the lookup that asks for it */
static void
test_rescan_on_unknown (Fixture *fx, gconstpointer data)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(PpnImage) image = NULL;
	g_autofree gchar *k = NULL;

	ppn_image_catalog_rescan (fx->catalog);
	g_assert_cmpuint (ppn_image_catalog_get_count (fx->catalog), ==, 0);
	k = make_image (fx, "late", "[image]\nname=late\nkernel=vmlinuz\n");
	image = ppn_image_catalog_lookup (fx->catalog, "late", &error);
	g_assert_no_error (error);
	g_assert_cmpstr (image->name, ==, "late");
	g_assert_cmpuint (ppn_image_catalog_get_count (fx->catalog), ==, 1);
}

static void
expect_refused (Fixture *fx, const gchar *name, const gchar *conf)
{
	g_autofree gchar *dir = make_image (fx, name, conf);
	g_autoptr(GError) error = NULL;
	g_autoptr(PpnImage) image = ppn_image_load (dir, &error);

	if (image != NULL)
		g_error ("image.conf was accepted:\n%s", conf);
	g_assert_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST);
	g_test_message ("refused: %s", error->message);
}

static void
test_bad_entries (Fixture *fx, gconstpointer data)
{
	g_autofree gchar *outside = g_build_filename (fx->dir, "outside-file", NULL);
	g_autofree gchar *good = NULL;

	write_file (fx->dir, "outside-file", "secret");
	/* missing file */
	expect_refused (fx, "a1", "[image]\nname=a1\nkernel=nope\n");
	/* escaping the image's directory */
	expect_refused (fx, "a2", "[image]\nname=a2\nkernel=../outside-file\n");
	expect_refused (fx, "a3", "[image]\nname=a3\nkernel=/etc/passwd\n");
	expect_refused (fx, "a4", "[image]\nname=a4\nkernel=vmlinuz\ninitrd=sub/../../outside-file\n");
	/* a symlink that leaves it */
	{
		g_autofree gchar *dir = make_image (fx, "a5", "[image]\nname=a5\nkernel=link\n");
		g_autofree gchar *link = g_build_filename (dir, "link", NULL);
		g_autoptr(GError) error = NULL;
		g_autoptr(PpnImage) image = NULL;

		g_assert_cmpint (symlink ("/etc/passwd", link), ==, 0);
		image = ppn_image_load (dir, &error);
		g_assert_null (image);
		g_assert_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST);
	}
	/* a symlink inside is fine */
	{
		g_autofree gchar *dir = make_image (fx, "a6", "[image]\nname=a6\nkernel=link\n");
		g_autofree gchar *link = g_build_filename (dir, "link", NULL);
		g_autoptr(GError) error = NULL;
		g_autoptr(PpnImage) image = NULL;

		g_assert_cmpint (symlink ("vmlinuz", link), ==, 0);
		image = ppn_image_load (dir, &error);
		g_assert_no_error (error);
		g_assert_true (g_str_has_suffix (image->kernel, "/a6/vmlinuz"));
	}
	/* a directory is not a kernel */
	expect_refused (fx, "a7", "[image]\nname=a7\nkernel=.\n");
	/* name and directory differ, or the name is not a name */
	expect_refused (fx, "a8", "[image]\nname=other\nkernel=vmlinuz\n");
	expect_refused (fx, "a9", "[image]\nkernel=vmlinuz\n");
	/* both or neither of kernel and disk; wrong format */
	expect_refused (fx, "b1", "[image]\nname=b1\nkernel=vmlinuz\ndisk=disk.qcow2\ndisk-format=qcow2\n");
	expect_refused (fx, "b2", "[image]\nname=b2\ndescription=nothing\n");
	expect_refused (fx, "b3", "[image]\nname=b3\ndisk=disk.qcow2\ndisk-format=raw\n");
	expect_refused (fx, "b4", "[image]\nname=b4\ndisk=disk.qcow2\n");
	/* unknown keys, groups */
	expect_refused (fx, "b5", "[image]\nname=b5\nkernel=vmlinuz\nkernal=x\n");
	expect_refused (fx, "b6", "[image]\nname=b6\nkernel=vmlinuz\n[extra]\na=b\n");
	/* a control character in a value that reaches the XML */
	expect_refused (fx, "b7", "[image]\nname=b7\nkernel=vmlinuz\ncmdline=a\\nb\n");

	/* the catalog skips them all with a warning, and keeps the good ones */
	good = make_image (fx, "good", "[image]\nname=good\nkernel=vmlinuz\n");
	g_test_expect_message ("ppn-agent", G_LOG_LEVEL_WARNING, "Skipping image*");
	for (guint i = 0; i < 14; i++)
		g_test_expect_message ("ppn-agent", G_LOG_LEVEL_WARNING, "Skipping image*");
	ppn_image_catalog_rescan (fx->catalog);
	g_test_assert_expected_messages ();
	g_assert_cmpuint (ppn_image_catalog_get_count (fx->catalog), ==, 2); /* good and a6 */
}

/* FX->dir/CASE/NAME/: a catalog of one disk image, whose disk.qcow2 the
 * caller then makes */
static gchar *
make_disk_catalog (Fixture *fx, const gchar *name)
{
	g_autofree gchar *catalog = g_build_filename (fx->dir, name, NULL);
	g_autofree gchar *dir = g_build_filename (catalog, name, NULL);
	g_autofree gchar *conf = g_strdup_printf ("[image]\nname=%s\ndisk=disk.qcow2\ndisk-format=qcow2\n", name);

	g_assert_cmpint (g_mkdir_with_parents (dir, 0755), ==, 0);
	write_file (dir, "image.conf", conf);
	return g_steal_pointer (&dir);
}

/* the catalog of @dir's parent loads @dir's image, or skips it with a
 * warning that matches @reason */
static void
expect_disk (const gchar *dir, const gchar *reason)
{
	g_autofree gchar *catalog_dir = g_path_get_dirname (dir);
	g_autofree gchar *name = g_path_get_basename (dir);
	g_autoptr(PpnImageCatalog) catalog = ppn_image_catalog_new (catalog_dir);
	g_autoptr(GError) error = NULL;
	g_autoptr(PpnImage) image = ppn_image_load (dir, &error);

	if (reason == NULL) {
		g_assert_no_error (error);
		g_assert_nonnull (image);
		ppn_image_catalog_rescan (catalog);
		g_assert_cmpuint (ppn_image_catalog_get_count (catalog), ==, 1);
		return;
	}
	if (image != NULL)
		g_error ("image %s was accepted, expected it refused for '%s'", name, reason);
	g_assert_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST);
	g_test_message ("%s refused: %s", name, error->message);
	if (!g_pattern_match_simple (reason, error->message))
		g_error ("image %s: expected a refusal matching '%s', got '%s'", name, reason, error->message);
	/* not fatal for the catalog: skipped, with the reason in the warning */
	{
		g_autofree gchar *pattern = g_strdup_printf ("Skipping image %s: %s", name, reason);
		g_test_expect_message ("ppn-agent", G_LOG_LEVEL_WARNING, pattern);
		ppn_image_catalog_rescan (catalog);
		g_test_assert_expected_messages ();
		g_assert_cmpuint (ppn_image_catalog_get_count (catalog), ==, 0);
	}
}

/* rewrite @len bytes at @offset of DIR/disk.qcow2 */
static void
patch_disk (const gchar *dir, gsize offset, const guint8 *bytes, gsize len)
{
	g_autofree gchar *path = g_build_filename (dir, "disk.qcow2", NULL);
	g_autofree gchar *contents = NULL;
	gsize size = 0;

	g_assert_true (g_file_get_contents (path, &contents, &size, NULL));
	g_assert_cmpuint (size, >=, offset + len);
	memcpy (contents + offset, bytes, len);
	g_assert_true (g_file_set_contents (path, contents, (gssize)size, NULL));
}

/* where DIR/disk.qcow2's (v3) header extensions start */
static gsize
disk_header_length (const gchar *dir)
{
	g_autofree gchar *path = g_build_filename (dir, "disk.qcow2", NULL);
	g_autofree gchar *contents = NULL;
	gsize size = 0;
	guint32 be;

	g_assert_true (g_file_get_contents (path, &contents, &size, NULL));
	g_assert_cmpuint (size, >=, 104);
	memcpy (&be, contents + 100, sizeof be);
	return GUINT32_FROM_BE (be);
}

/* a catalog disk must be qcow2 whose header makes QEMU open no other
 * file: no backing file, no external data file (bit or extension) */
static void
test_qcow2_header (Fixture *fx, gconstpointer data)
{
	g_autofree gchar *dir = NULL;

	/* plain images, v3 and v2: accepted */
	dir = make_disk_catalog (fx, "plain");
	qemu_img (dir, "create", "-q", "-f", "qcow2", "disk.qcow2", "16M", NULL);
	expect_disk (dir, NULL);
	g_clear_pointer (&dir, g_free);
	dir = make_disk_catalog (fx, "plain-v2");
	qemu_img (dir, "create", "-q", "-f", "qcow2", "-o", "compat=0.10", "disk.qcow2", "16M", NULL);
	expect_disk (dir, NULL);
	g_clear_pointer (&dir, g_free);

	/* a backing file, even one inside the image's directory */
	dir = make_disk_catalog (fx, "backed");
	qemu_img (dir, "create", "-q", "-f", "qcow2", "other.qcow2", "16M", NULL);
	qemu_img (dir, "create", "-q", "-f", "qcow2", "-b", "other.qcow2", "-F", "qcow2", "disk.qcow2", NULL);
	expect_disk (dir, "*names a backing file*");
	g_clear_pointer (&dir, g_free);

	/* an external data file: the incompatible feature bit ... */
	dir = make_disk_catalog (fx, "data-file");
	qemu_img (dir, "create", "-q", "-f", "qcow2", "-o", "data_file=x.raw", "disk.qcow2", "16M", NULL);
	expect_disk (dir, "*external data file*");
	/* ... and its name extension alone, with the bit cleared */
	{
		const guint8 zero[8] = {0};
		g_autofree gchar *ext_dir = make_disk_catalog (fx, "data-file-ext");
		g_autofree gchar *from = g_build_filename (dir, "disk.qcow2", NULL);
		g_autofree gchar *to = g_build_filename (ext_dir, "disk.qcow2", NULL);
		g_autofree gchar *contents = NULL;
		gsize size = 0;

		g_assert_true (g_file_get_contents (from, &contents, &size, NULL));
		g_assert_true (g_file_set_contents (to, contents, (gssize)size, NULL));
		patch_disk (ext_dir, 72, zero, sizeof zero);
		expect_disk (ext_dir, "*names an external data file*");
	}
	g_clear_pointer (&dir, g_free);

	/* not qcow2 at all, whatever image.conf says */
	dir = make_disk_catalog (fx, "raw");
	qemu_img (dir, "create", "-q", "-f", "raw", "disk.qcow2", "1M", NULL);
	expect_disk (dir, "*not a qcow2 image*");
	g_clear_pointer (&dir, g_free);
	dir = make_disk_catalog (fx, "empty");
	write_file (dir, "disk.qcow2", "");
	expect_disk (dir, "*not a qcow2 image*");
	g_clear_pointer (&dir, g_free);

	/* a header cut short: the magic only, and most of a v3 header */
	dir = make_disk_catalog (fx, "magic-only");
	write_file (dir, "disk.qcow2", "QFI\xfb");
	expect_disk (dir, "*truncated qcow2 header*");
	g_clear_pointer (&dir, g_free);
	dir = make_disk_catalog (fx, "truncated");
	qemu_img (dir, "create", "-q", "-f", "qcow2", "disk.qcow2", "16M", NULL);
	{
		g_autofree gchar *path = g_build_filename (dir, "disk.qcow2", NULL);
		g_assert_cmpint (truncate (path, 80), ==, 0);
	}
	expect_disk (dir, "*truncated qcow2 header*");
	g_clear_pointer (&dir, g_free);
	/* the header, but not the extensions after it */
	dir = make_disk_catalog (fx, "no-extensions");
	qemu_img (dir, "create", "-q", "-f", "qcow2", "disk.qcow2", "16M", NULL);
	{
		g_autofree gchar *path = g_build_filename (dir, "disk.qcow2", NULL);
		g_assert_cmpint (truncate (path, 104), ==, 0);
	}
	expect_disk (dir, "*ends inside its qcow2 header extensions*");
	g_clear_pointer (&dir, g_free);

	/* a version QEMU may read differently */
	dir = make_disk_catalog (fx, "version4");
	qemu_img (dir, "create", "-q", "-f", "qcow2", "disk.qcow2", "16M", NULL);
	{
		const guint8 v4[4] = {0, 0, 0, 4};
		patch_disk (dir, 4, v4, sizeof v4);
	}
	expect_disk (dir, "*qcow2 version 4*");
	g_clear_pointer (&dir, g_free);

	/* an extension whose length runs past the first cluster */
	dir = make_disk_catalog (fx, "long-extension");
	qemu_img (dir, "create", "-q", "-f", "qcow2", "disk.qcow2", "16M", NULL);
	{
		const guint8 ext[8] = {0x12, 0x34, 0x56, 0x78, 0x7f, 0xff, 0xff, 0xff};
		patch_disk (dir, disk_header_length (dir), ext, sizeof ext);
	}
	expect_disk (dir, "*overruns the header*");
	g_clear_pointer (&dir, g_free);
}

int
main (int argc, char **argv)
{
	g_test_init (&argc, &argv, NULL);
	g_test_add ("/image-catalog/good", Fixture, NULL, fixture_setup, test_good, fixture_teardown);
	g_test_add ("/image-catalog/lookup-refused", Fixture, NULL, fixture_setup, test_lookup_refused,
		    fixture_teardown);
	g_test_add ("/image-catalog/rescan-on-unknown", Fixture, NULL, fixture_setup, test_rescan_on_unknown,
		    fixture_teardown);
	g_test_add ("/image-catalog/bad-entries", Fixture, NULL, fixture_setup, test_bad_entries, fixture_teardown);
	g_test_add ("/image-catalog/qcow2-header", Fixture, NULL, fixture_setup, test_qcow2_header, fixture_teardown);
	return g_test_run ();
}
