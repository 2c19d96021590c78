#include "config.h"

#define G_LOG_DOMAIN "ppn-test"

#include <glib/gstdio.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <libxml/parser.h>
#include <string.h>

#include "ppn-agent-cleanup.h"
#include "ppn-domain-xml.h"
#include "ppn-error.h"
#include "ppn-forward.h"

#define TEST_VM_ID "0123456789abcdef"

static PpnForward *
test_forward (guint16 guest, const gchar *proto, guint16 host)
{
	PpnForward *fwd = ppn_forward_new (guest, proto);

	fwd->host_address = g_strdup ("127.0.0.1");
	fwd->host_port = host;
	return fwd;
}

static PpnDomainSpec *
test_spec (gboolean disk, const gchar *accel, gboolean forwards)
{
	PpnDomainSpec *spec = ppn_domain_spec_new ();

	spec->vm_id = g_strdup (TEST_VM_ID);
	spec->tenant = g_strdup ("alice");
	spec->name = g_strdup ("web1");
	spec->image = g_strdup ("test-guest");
	spec->node = g_strdup ("node1");
	spec->created = g_strdup ("2026-12-03T15:00:00Z");
	spec->accel = g_strdup (accel);
	spec->egress = g_strdup ("nat");
	spec->vcpus = 1;
	spec->memory_mib = 256;
	if (disk) {
		spec->disk = g_strdup ("/var/lib/ppn/agent/disks/ppn-" TEST_VM_ID ".qcow2");
	} else {
		spec->kernel = g_strdup ("/var/lib/ppn/images/test-guest/vmlinuz");
		spec->initrd = g_strdup ("/var/lib/ppn/images/test-guest/initrd.img");
		spec->cmdline = g_strdup ("console=ttyS0 panic=-1 quiet");
	}
	spec->console_path = g_strdup ("/var/lib/ppn/agent/console/ppn-" TEST_VM_ID ".log");
	if (forwards) {
		g_ptr_array_add (spec->forwards, test_forward (80, "tcp", 20000));
		g_ptr_array_add (spec->forwards, test_forward (53, "udp", 20001));
	}
	return spec;
}

static const gchar *
test_validator (void)
{
	static gchar *found = NULL;

	if (found == NULL) {
		if (VIRT_XML_VALIDATE[0] != '\0' && g_file_test (VIRT_XML_VALIDATE, G_FILE_TEST_IS_EXECUTABLE))
			found = g_strdup (VIRT_XML_VALIDATE);
		else
			found = g_find_program_in_path ("virt-xml-validate");
		if (found == NULL)
			found = g_strdup ("");
	}
	return found;
}

/* libvirt's own RNG, as virt-xml-validate has it; it covers the
 * qemu:commandline namespace */
static void
test_schema_validate (const gchar *path)
{
	const gchar *validator = test_validator ();
	const gchar *argv[] = {validator, path, "domain", NULL};
	g_autofree gchar *out = NULL;
	g_autofree gchar *err = NULL;
	g_autoptr(GError) error = NULL;
	gint status = 0;

	if (validator[0] == '\0') {
		g_test_message ("virt-xml-validate not found; schema check skipped for %s", path);
		return;
	}
	g_assert_true (g_spawn_sync (NULL, (gchar **)argv, NULL, G_SPAWN_DEFAULT, NULL, NULL, &out, &err,
				     &status, &error));
	g_assert_no_error (error);
	if (!g_spawn_check_wait_status (status, NULL))
		g_error ("virt-xml-validate refused %s:\n%s%s", path, out, err);
}

static void
test_virt_error_func (void *user_data, virErrorPtr err)
{
}

/* and libvirt's parser, with validation, on the test driver */
static void
test_libvirt_define (const gchar *xml)
{
	g_autoptr(virConnect) conn = NULL;
	g_autoptr(virDomain) dom = NULL;

	virSetErrorFunc (NULL, test_virt_error_func);
	conn = virConnectOpen ("test:///default");
	g_assert_nonnull (conn);
	dom = virDomainDefineXMLFlags (conn, xml, VIR_DOMAIN_DEFINE_VALIDATE);
	if (dom == NULL)
		g_error ("libvirt refused the domain XML: %s", virGetLastErrorMessage ());
	g_assert_cmpstr (virDomainGetName (dom), ==, "ppn-" TEST_VM_ID);
	g_assert_cmpint (virDomainUndefine (dom), ==, 0);
}

static void
test_golden (const gchar *name, PpnDomainSpec *spec)
{
	g_autofree gchar *file = g_strdup_printf ("%s.xml", name);
	g_autofree gchar *path = g_build_filename (PPN_TEST_SRCDIR, "data", "domain-xml", file, NULL);
	g_autofree gchar *expected = NULL;
	g_autofree gchar *xml = NULL;
	g_autoptr(GError) error = NULL;

	xml = ppn_domain_xml_build (spec, &error);
	g_assert_no_error (error);
	g_assert_nonnull (xml);
	if (g_strcmp0 (g_getenv ("PPN_UPDATE_GOLDEN"), "1") == 0) {
		g_assert_true (g_file_set_contents (path, xml, -1, &error));
		g_assert_no_error (error);
		g_test_message ("rewrote %s", path);
	}
	g_assert_true (g_file_get_contents (path, &expected, NULL, &error));
	g_assert_no_error (error);
	/* byte for byte: any change of the shape is a change of the golden file */
	g_assert_cmpstr (xml, ==, expected);
	test_schema_validate (path);
	test_libvirt_define (xml);
}

static void
test_golden_kernel_qemu (void)
{
	g_autoptr(PpnDomainSpec) spec = test_spec (FALSE, "tcg", TRUE);
	test_golden ("kernel-qemu", spec);
}

static void
test_golden_kernel_kvm (void)
{
	g_autoptr(PpnDomainSpec) spec = test_spec (FALSE, "kvm", TRUE);
	test_golden ("kernel-kvm", spec);
}

static void
test_golden_disk_qemu (void)
{
	g_autoptr(PpnDomainSpec) spec = test_spec (TRUE, "tcg", TRUE);
	test_golden ("disk-qemu", spec);
}

static void
test_golden_disk_kvm (void)
{
	g_autoptr(PpnDomainSpec) spec = test_spec (TRUE, "kvm", TRUE);
	test_golden ("disk-kvm", spec);
}

static void
test_golden_no_forwards (void)
{
	g_autoptr(PpnDomainSpec) spec = test_spec (FALSE, "tcg", FALSE);
	test_golden ("no-forwards-qemu", spec);
}

/* egress none: the same domain, with restrict=on on its SLIRP netdev */
static void
test_golden_restricted (void)
{
	g_autoptr(PpnDomainSpec) spec = test_spec (FALSE, "tcg", TRUE);

	g_free (spec->egress);
	spec->egress = g_strdup ("none");
	test_golden ("kernel-restricted-qemu", spec);
}

/* case 04: a hostile value is refused before any XML exists */
static void
test_hostile_values (void)
{
	g_autofree gchar *long_name = g_strnfill (10000, 'a');
	const gchar *hostile[] = {
		"a</name><devices><disk type='file'><source file='/etc/shadow'/></disk></devices><name>b",
		"a&b",
		"a'b",
		"a\"b",
		long_name,
		"a\x01" "b",
		"a\nb",
		"caf\xc3\xa9",
		"\xd0\xb0\xd0\xb1",
		"a b",
		"-a",
		"",
		NULL,
	};
	const gchar *fields[] = {"tenant", "name", "image", "node", "vm_id"};

	for (guint f = 0; f < G_N_ELEMENTS (fields); f++) {
		for (guint i = 0; hostile[i] != NULL; i++) {
			g_autoptr(PpnDomainSpec) spec = test_spec (FALSE, "tcg", TRUE);
			g_autoptr(GError) error = NULL;
			g_autofree gchar *xml = NULL;
			gchar **slot = NULL;

			if (g_strcmp0 (fields[f], "tenant") == 0)
				slot = &spec->tenant;
			else if (g_strcmp0 (fields[f], "name") == 0)
				slot = &spec->name;
			else if (g_strcmp0 (fields[f], "image") == 0)
				slot = &spec->image;
			else if (g_strcmp0 (fields[f], "node") == 0)
				slot = &spec->node;
			else
				slot = &spec->vm_id;
			g_free (*slot);
			*slot = g_strdup (hostile[i]);
			xml = ppn_domain_xml_build (spec, &error);
			g_assert_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST);
			g_assert_null (xml);
		}
	}
}

static void
test_hostile_other (void)
{
	g_autoptr(PpnDomainSpec) spec = NULL;
	g_autoptr(GError) error = NULL;
	g_autofree gchar *xml = NULL;

	/* upper-case hex is not a vm id */
	spec = test_spec (FALSE, "tcg", TRUE);
	g_free (spec->vm_id);
	spec->vm_id = g_strdup ("0123456789ABCDEF");
	xml = ppn_domain_xml_build (spec, &error);
	g_assert_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST);
	g_clear_error (&error);
	g_clear_pointer (&spec, ppn_domain_spec_free);

	/* a forward's address must be numeric IPv4: no empty (all interfaces) */
	spec = test_spec (FALSE, "tcg", TRUE);
	g_free (((PpnForward *)g_ptr_array_index (spec->forwards, 0))->host_address);
	((PpnForward *)g_ptr_array_index (spec->forwards, 0))->host_address = g_strdup ("");
	xml = ppn_domain_xml_build (spec, &error);
	g_assert_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST);
	g_clear_error (&error);
	g_clear_pointer (&spec, ppn_domain_spec_free);

	/* ... nor something that extends the -netdev option list */
	spec = test_spec (FALSE, "tcg", TRUE);
	g_free (((PpnForward *)g_ptr_array_index (spec->forwards, 0))->host_address);
	((PpnForward *)g_ptr_array_index (spec->forwards, 0))->host_address = g_strdup ("127.0.0.1,smb=/");
	xml = ppn_domain_xml_build (spec, &error);
	g_assert_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST);
	g_clear_error (&error);
	g_clear_pointer (&spec, ppn_domain_spec_free);

	/* proto is a fixed word */
	spec = test_spec (FALSE, "tcg", TRUE);
	g_free (((PpnForward *)g_ptr_array_index (spec->forwards, 0))->proto);
	((PpnForward *)g_ptr_array_index (spec->forwards, 0))->proto = g_strdup ("tcp:0.0.0.0:1-:22,hostfwd=tcp");
	xml = ppn_domain_xml_build (spec, &error);
	g_assert_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST);
	g_clear_error (&error);
	g_clear_pointer (&spec, ppn_domain_spec_free);

	/* control characters in a catalog value */
	spec = test_spec (FALSE, "tcg", TRUE);
	g_free (spec->cmdline);
	spec->cmdline = g_strdup ("console=ttyS0\ninit=/bin/sh");
	xml = ppn_domain_xml_build (spec, &error);
	g_assert_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST);
	g_clear_error (&error);
	g_clear_pointer (&spec, ppn_domain_spec_free);

	/* relative paths */
	spec = test_spec (FALSE, "tcg", TRUE);
	g_free (spec->kernel);
	spec->kernel = g_strdup ("vmlinuz");
	xml = ppn_domain_xml_build (spec, &error);
	g_assert_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST);
	g_clear_error (&error);
	g_clear_pointer (&spec, ppn_domain_spec_free);

	/* an unknown accelerator */
	spec = test_spec (FALSE, "xen", TRUE);
	xml = ppn_domain_xml_build (spec, &error);
	g_assert_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST);
	g_assert_null (xml);
	g_clear_error (&error);
	g_clear_pointer (&spec, ppn_domain_spec_free);

	/* an egress policy that is not one of the two words, or none at all */
	{
		const gchar *bad[] = {"", "NONE", "restricted", "nat,restrict=off", "none ", NULL};

		for (guint i = 0; i < G_N_ELEMENTS (bad); i++) {
			spec = test_spec (FALSE, "tcg", TRUE);
			g_free (spec->egress);
			spec->egress = g_strdup (bad[i]);
			xml = ppn_domain_xml_build (spec, &error);
			if (xml != NULL)
				g_error ("egress '%s' was accepted", bad[i] != NULL ? bad[i] : "(null)");
			g_assert_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST);
			g_clear_error (&error);
			g_clear_pointer (&spec, ppn_domain_spec_free);
		}
	}
}

static guint
test_count_elements (xmlNode *node)
{
	guint n = 0;

	for (xmlNode *c = node; c != NULL; c = c->next) {
		if (c->type == XML_ELEMENT_NODE)
			n += 1 + test_count_elements (c->children);
	}
	return n;
}

static xmlNode *
test_find (xmlNode *node, const gchar *name)
{
	for (xmlNode *c = node; c != NULL; c = c->next) {
		xmlNode *found;
		if (c->type == XML_ELEMENT_NODE && g_strcmp0 ((const gchar *)c->name, name) == 0)
			return c;
		found = test_find (c->children, name);
		if (found != NULL)
			return found;
	}
	return NULL;
}

/* a value that is allowed to hold markup (a catalog cmdline) arrives as
 * text, and the document keeps exactly the elements the generator meant */
static void
test_escaping (void)
{
	const gchar *cmdline = "console=ttyS0 a&b <devices><disk/></devices> \"q\" 'r' ]]> &amp;";
	g_autoptr(PpnDomainSpec) plain = test_spec (FALSE, "tcg", TRUE);
	g_autoptr(PpnDomainSpec) spec = test_spec (FALSE, "tcg", TRUE);
	g_autofree gchar *plain_xml = NULL;
	g_autofree gchar *xml = NULL;
	g_autofree gchar *expected = g_strdup_printf ("%s ppn.vm_id=%s", cmdline, TEST_VM_ID);
	g_autoptr(xmlDoc) plain_doc = NULL;
	g_autoptr(xmlDoc) doc = NULL;
	g_autoptr(xmlChar) content = NULL;
	g_autoptr(GError) error = NULL;
	xmlNode *node;

	g_free (spec->cmdline);
	spec->cmdline = g_strdup (cmdline);
	xml = ppn_domain_xml_build (spec, &error);
	g_assert_no_error (error);
	plain_xml = ppn_domain_xml_build (plain, &error);
	g_assert_no_error (error);
	g_assert_null (strstr (xml, "<devices><disk/>"));

	doc = xmlReadMemory (xml, (int)strlen (xml), "d.xml", NULL, XML_PARSE_NONET);
	plain_doc = xmlReadMemory (plain_xml, (int)strlen (plain_xml), "p.xml", NULL, XML_PARSE_NONET);
	g_assert_nonnull (doc);
	g_assert_nonnull (plain_doc);
	g_assert_cmpuint (test_count_elements (xmlDocGetRootElement (doc)), ==,
			  test_count_elements (xmlDocGetRootElement (plain_doc)));
	node = test_find (xmlDocGetRootElement (doc), "cmdline");
	g_assert_nonnull (node);
	content = xmlNodeGetContent (node);
	g_assert_cmpstr ((const gchar *)content, ==, expected);
	/* one <devices>, one <disk>-free device list */
	g_assert_null (test_find (xmlDocGetRootElement (doc), "disk"));
}

/* the value of the qemu:arg after the one that says -netdev */
static gchar *
test_netdev_of (const gchar *xml)
{
	g_autoptr(xmlDoc) doc = xmlReadMemory (xml, (int)strlen (xml), "d.xml", NULL, XML_PARSE_NONET);
	xmlNode *cmdline;
	gboolean next = FALSE;
	guint netdevs = 0;
	gchar *found = NULL;

	g_assert_nonnull (doc);
	cmdline = test_find (xmlDocGetRootElement (doc), "commandline");
	g_assert_nonnull (cmdline);
	for (xmlNode *c = cmdline->children; c != NULL; c = c->next) {
		g_autoptr(xmlChar) value = NULL;

		if (c->type != XML_ELEMENT_NODE)
			continue;
		value = xmlGetProp (c, (const xmlChar *)"value");
		if (next && found == NULL)
			found = g_strdup ((const gchar *)value);
		next = g_strcmp0 ((const gchar *)value, "-netdev") == 0;
		netdevs += next ? 1 : 0;
	}
	g_assert_cmpuint (netdevs, ==, 1);
	g_assert_nonnull (found);
	return found;
}

/* restrict=on is on the one SLIRP netdev exactly when the policy is none,
 * and the forwards are there either way */
static void
test_egress_netdev (void)
{
	const gchar *policies[] = {"nat", "none"};

	for (guint i = 0; i < G_N_ELEMENTS (policies); i++) {
		for (guint with_forwards = 0; with_forwards < 2; with_forwards++) {
			g_autoptr(PpnDomainSpec) spec = test_spec (FALSE, "tcg", with_forwards);
			g_autoptr(GError) error = NULL;
			g_autofree gchar *xml = NULL;
			g_autofree gchar *netdev = NULL;
			g_auto(GStrv) opts = NULL;
			guint restricts = 0, hostfwds = 0;

			g_free (spec->egress);
			spec->egress = g_strdup (policies[i]);
			xml = ppn_domain_xml_build (spec, &error);
			g_assert_no_error (error);
			netdev = test_netdev_of (xml);
			g_test_message ("egress %s: -netdev %s", policies[i], netdev);
			opts = g_strsplit (netdev, ",", -1);
			g_assert_cmpstr (opts[0], ==, "user");
			for (guint j = 0; opts[j] != NULL; j++) {
				if (g_str_has_prefix (opts[j], "restrict"))
					restricts++;
				if (g_str_has_prefix (opts[j], "hostfwd="))
					hostfwds++;
			}
			g_assert_cmpuint (restricts, ==, i == 1 ? 1 : 0);
			if (i == 1)
				g_assert_true (g_strv_contains ((const gchar *const *)opts, "restrict=on"));
			g_assert_cmpuint (hostfwds, ==, with_forwards ? 2 : 0);
			/* and the metadata says the same */
			{
				g_autofree gchar *element = g_strdup_printf ("<ppn:egress>%s</ppn:egress>", policies[i]);
				g_assert_nonnull (strstr (xml, element));
			}
		}
	}
}

static gchar *
test_metadata_of (const gchar *xml)
{
	g_autoptr(xmlDoc) doc = xmlReadMemory (xml, (int)strlen (xml), "d.xml", NULL, XML_PARSE_NONET);
	g_autoptr(xmlBuffer) buf = xmlBufferCreate ();
	xmlNode *vm;

	g_assert_nonnull (doc);
	vm = test_find (xmlDocGetRootElement (doc), "vm");
	g_assert_nonnull (vm);
	g_assert_cmpint (xmlNodeDump (buf, doc, vm, 0, 0), >, 0);
	return g_strdup ((const gchar *)xmlBufferContent (buf));
}

static void
test_metadata_round_trip (void)
{
	g_autoptr(PpnDomainSpec) spec = test_spec (FALSE, "tcg", TRUE);
	g_autoptr(GError) error = NULL;
	g_autofree gchar *xml = ppn_domain_xml_build (spec, &error);
	g_autofree gchar *meta_xml = NULL;
	g_autoptr(PpnDomainMetadata) meta = NULL;
	PpnForward *fwd;

	g_assert_no_error (error);
	meta_xml = test_metadata_of (xml);
	meta = ppn_domain_metadata_parse (meta_xml, &error);
	g_assert_no_error (error);
	g_assert_cmpstr (meta->vm_id, ==, TEST_VM_ID);
	g_assert_cmpstr (meta->tenant, ==, "alice");
	g_assert_cmpstr (meta->name, ==, "web1");
	g_assert_cmpstr (meta->image, ==, "test-guest");
	g_assert_cmpstr (meta->node, ==, "node1");
	g_assert_cmpstr (meta->created, ==, "2026-12-03T15:00:00Z");
	g_assert_cmpstr (meta->egress, ==, "nat");
	g_assert_cmpuint (meta->forwards->len, ==, 2);
	fwd = g_ptr_array_index (meta->forwards, 1);
	g_assert_cmpuint (fwd->guest_port, ==, 53);
	g_assert_cmpstr (fwd->proto, ==, "udp");
	g_assert_cmpstr (fwd->host_address, ==, "127.0.0.1");
	g_assert_cmpuint (fwd->host_port, ==, 20001);

	/* and a restricted one reads back as restricted */
	{
		g_autoptr(PpnDomainSpec) none = test_spec (TRUE, "kvm", FALSE);
		g_autofree gchar *none_xml = NULL;
		g_autofree gchar *none_meta_xml = NULL;
		g_autoptr(PpnDomainMetadata) none_meta = NULL;

		g_free (none->egress);
		none->egress = g_strdup ("none");
		none_xml = ppn_domain_xml_build (none, &error);
		g_assert_no_error (error);
		none_meta_xml = test_metadata_of (none_xml);
		none_meta = ppn_domain_metadata_parse (none_meta_xml, &error);
		g_assert_no_error (error);
		g_assert_cmpstr (none_meta->egress, ==, "none");
	}
}

/* what virDomainGetMetadata() gives back: the element without its namespace */
static void
test_metadata_libvirt_form (void)
{
	const gchar *xml = "<vm>\n  <id>0123456789abcdef</id>\n  <tenant>alice</tenant>\n  <name>web1</name>\n"
			   "  <image>test-guest</image>\n  <node>node1</node>\n"
			   "  <created>2026-12-03T15:00:00Z</created>\n"
			   "  <forward guest-port=\"80\" proto=\"tcp\" host-address=\"127.0.0.1\" host-port=\"20000\"/>\n"
			   "</vm>\n";
	g_autoptr(GError) error = NULL;
	g_autoptr(PpnDomainMetadata) meta = ppn_domain_metadata_parse (xml, &error);

	g_assert_no_error (error);
	g_assert_cmpstr (meta->tenant, ==, "alice");
	g_assert_cmpuint (meta->forwards->len, ==, 1);
	/* made before the egress policy was recorded: SLIRP's default, nat */
	g_assert_cmpstr (meta->egress, ==, "nat");
}

static void
test_metadata_egress (void)
{
	const gchar *head = "<vm><id>0123456789abcdef</id><tenant>a</tenant><name>n</name><image>i</image>";
	struct {
		const gchar *element;
		const gchar *expected; /* NULL: refused */
	} cases[] = {
		{"<egress>none</egress>", "none"},
		{"<egress>nat</egress>", "nat"},
		{"", "nat"},
		{"<egress></egress>", NULL},
		{"<egress>NONE</egress>", NULL},
		{"<egress>open</egress>", NULL},
		{"<egress>none</egress><egress>nat</egress>", NULL},
		{"<egress><b>none</b></egress>", NULL},
		{"<egress mode='x'>none</egress>", NULL},
	};

	for (guint i = 0; i < G_N_ELEMENTS (cases); i++) {
		g_autofree gchar *xml = g_strdup_printf ("%s%s</vm>", head, cases[i].element);
		g_autoptr(GError) error = NULL;
		g_autoptr(PpnDomainMetadata) meta = ppn_domain_metadata_parse (xml, &error);

		if (cases[i].expected == NULL) {
			if (meta != NULL)
				g_error ("metadata with %s was accepted", cases[i].element);
			g_assert_error (error, PPN_ERROR, PPN_ERROR_INTERNAL);
			continue;
		}
		g_assert_no_error (error);
		g_assert_cmpstr (meta->egress, ==, cases[i].expected);
	}
}

static void
test_metadata_refused (void)
{
	g_autofree gchar *huge = NULL;
	g_autoptr(GString) many = g_string_new ("<vm><id>0123456789abcdef</id><tenant>a</tenant><name>n</name><image>i</image>");
	const gchar *bad[] = {
		"",
		"not xml",
		"<other/>",
		"<vm xmlns='urn:someone-else'><id>0123456789abcdef</id><tenant>a</tenant><name>n</name><image>i</image></vm>",
		/* missing or bad id, tenant */
		"<vm><tenant>a</tenant><name>n</name><image>i</image></vm>",
		"<vm><id>0123456789ABCDEF</id><tenant>a</tenant><name>n</name><image>i</image></vm>",
		"<vm><id>0123456789abcdef</id><name>n</name><image>i</image></vm>",
		"<vm><id>0123456789abcdef</id><tenant>a&lt;b</tenant><name>n</name><image>i</image></vm>",
		"<vm><id>0123456789abcdef</id><tenant><b>a</b></tenant><name>n</name><image>i</image></vm>",
		"<vm><id>0123456789abcdef</id><id>0123456789abcdee</id><tenant>a</tenant><name>n</name><image>i</image></vm>",
		"<vm><id>0123456789abcdef</id><tenant>a</tenant><name>n</name><image>i</image><disk/></vm>",
		"<!DOCTYPE vm [<!ENTITY t \"alice\">]><vm><id>0123456789abcdef</id><tenant>&t;</tenant><name>n</name><image>i</image></vm>",
		/* forwards */
		"<vm><id>0123456789abcdef</id><tenant>a</tenant><name>n</name><image>i</image>"
		"<forward guest-port='0' proto='tcp' host-address='127.0.0.1' host-port='20000'/></vm>",
		"<vm><id>0123456789abcdef</id><tenant>a</tenant><name>n</name><image>i</image>"
		"<forward guest-port='80' proto='sctp' host-address='127.0.0.1' host-port='20000'/></vm>",
		"<vm><id>0123456789abcdef</id><tenant>a</tenant><name>n</name><image>i</image>"
		"<forward guest-port='80' proto='tcp' host-address='' host-port='20000'/></vm>",
		"<vm><id>0123456789abcdef</id><tenant>a</tenant><name>n</name><image>i</image>"
		"<forward guest-port='80' proto='tcp' host-address='127.0.0.1' host-port='65536'/></vm>",
		"<vm><id>0123456789abcdef</id><tenant>a</tenant><name>n</name><image>i</image>"
		"<forward guest-port='80' proto='tcp' host-address='127.0.0.1' host-port='20000' extra='1'/></vm>",
		"<vm><id>0123456789abcdef</id><tenant>a</tenant><name>n</name><image>i</image>"
		"<forward guest-port='80' proto='tcp' host-address='127.0.0.1'/></vm>",
		NULL,
	};

	for (guint i = 0; bad[i] != NULL; i++) {
		g_autoptr(GError) error = NULL;
		g_autoptr(PpnDomainMetadata) meta = ppn_domain_metadata_parse (bad[i], &error);

		if (meta != NULL)
			g_error ("metadata %u was accepted: %s", i, bad[i]);
		g_assert_nonnull (error);
	}

	for (guint i = 0; i < 100; i++)
		g_string_append (many, "<forward guest-port='80' proto='tcp' host-address='127.0.0.1' host-port='20000'/>");
	g_string_append (many, "</vm>");
	{
		g_autoptr(GError) error = NULL;
		g_autoptr(PpnDomainMetadata) meta = ppn_domain_metadata_parse (many->str, &error);
		g_assert_null (meta);
		g_assert_nonnull (error);
	}
	huge = g_strnfill (100 * 1024, ' ');
	{
		g_autofree gchar *doc = g_strdup_printf ("<vm>%s</vm>", huge);
		g_autoptr(GError) error = NULL;
		g_autoptr(PpnDomainMetadata) meta = ppn_domain_metadata_parse (doc, &error);
		g_assert_null (meta);
		g_assert_nonnull (error);
	}
}

static void
test_derived_ids (void)
{
	g_autofree gchar *uuid1 = ppn_domain_uuid_for_vm_id (TEST_VM_ID);
	g_autofree gchar *uuid2 = ppn_domain_uuid_for_vm_id ("0123456789abcdee");
	g_autofree gchar *mac = ppn_domain_mac_for_vm_id (TEST_VM_ID);

	g_assert_true (g_uuid_string_is_valid (uuid1));
	g_assert_cmpstr (uuid1, !=, uuid2);
	g_assert_true (g_str_has_prefix (mac, "52:54:00:"));
	g_assert_cmpuint (strlen (mac), ==, 17);
}

int
main (int argc, char **argv)
{
	g_test_init (&argc, &argv, NULL);
	g_test_add_func ("/domain-xml/golden/kernel-qemu", test_golden_kernel_qemu);
	g_test_add_func ("/domain-xml/golden/kernel-kvm", test_golden_kernel_kvm);
	g_test_add_func ("/domain-xml/golden/disk-qemu", test_golden_disk_qemu);
	g_test_add_func ("/domain-xml/golden/disk-kvm", test_golden_disk_kvm);
	g_test_add_func ("/domain-xml/golden/no-forwards", test_golden_no_forwards);
	g_test_add_func ("/domain-xml/golden/kernel-restricted", test_golden_restricted);
	g_test_add_func ("/domain-xml/egress-netdev", test_egress_netdev);
	g_test_add_func ("/domain-xml/hostile/names", test_hostile_values);
	g_test_add_func ("/domain-xml/hostile/other", test_hostile_other);
	g_test_add_func ("/domain-xml/escaping", test_escaping);
	g_test_add_func ("/domain-xml/metadata/round-trip", test_metadata_round_trip);
	g_test_add_func ("/domain-xml/metadata/libvirt-form", test_metadata_libvirt_form);
	g_test_add_func ("/domain-xml/metadata/refused", test_metadata_refused);
	g_test_add_func ("/domain-xml/metadata/egress", test_metadata_egress);
	g_test_add_func ("/domain-xml/derived-ids", test_derived_ids);
	return g_test_run ();
}
