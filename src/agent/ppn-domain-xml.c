#include "config.h"

#define G_LOG_DOMAIN "ppn-agent"

#include <arpa/inet.h>
#include <libxml/parser.h>
#include <string.h>

#include "ppn-agent-cleanup.h"
#include "ppn-domain-xml.h"
#include "ppn-error.h"
#include "ppn-forward.h"
#include "ppn-i18n.h"

#define PPN_XMLNS_QEMU "http://libvirt.org/schemas/domain/qemu/1.0"
#define PPN_DOMAIN_PATH_MAX 4096
#define PPN_DOMAIN_CMDLINE_MAX 2048
#define PPN_DOMAIN_FORWARDS_MAX 64
#define PPN_DOMAIN_METADATA_MAX (64 * 1024)
/* libvirt's own devices sit in the low slots of pci.0 */
#define PPN_DOMAIN_NIC_PCI_ADDR "0x10"

PpnDomainSpec *
ppn_domain_spec_new (void)
{
	PpnDomainSpec *spec = g_new0 (PpnDomainSpec, 1);

	spec->forwards = ppn_forwards_new ();
	return spec;
}

void
ppn_domain_spec_free (PpnDomainSpec *spec)
{
	if (spec == NULL)
		return;
	g_free (spec->vm_id);
	g_free (spec->tenant);
	g_free (spec->name);
	g_free (spec->image);
	g_free (spec->node);
	g_free (spec->created);
	g_free (spec->accel);
	g_free (spec->egress);
	g_free (spec->kernel);
	g_free (spec->initrd);
	g_free (spec->cmdline);
	g_free (spec->disk);
	g_free (spec->console_path);
	g_clear_pointer (&spec->forwards, g_ptr_array_unref);
	g_free (spec);
}

gchar *
ppn_domain_name_for_vm_id (const gchar *vm_id)
{
	g_return_val_if_fail (vm_id != NULL, NULL);
	return g_strconcat (PPN_DOMAIN_PREFIX, vm_id, NULL);
}

static void
ppn_domain_digest (const gchar *salt, const gchar *vm_id, guint8 *out, gsize out_len)
{
	g_autoptr(GChecksum) sum = g_checksum_new (G_CHECKSUM_SHA256);
	guint8 digest[32];
	gsize len = sizeof digest;

	g_checksum_update (sum, (const guchar *)salt, -1);
	g_checksum_update (sum, (const guchar *)vm_id, -1);
	g_checksum_get_digest (sum, digest, &len);
	memcpy (out, digest, MIN (out_len, len));
}

/* name-based, so a domain's UUID follows from its vm id alone */
gchar *
ppn_domain_uuid_for_vm_id (const gchar *vm_id)
{
	guint8 b[16];

	g_return_val_if_fail (vm_id != NULL, NULL);
	ppn_domain_digest ("ppn-uuid:", vm_id, b, sizeof b);
	b[6] = (b[6] & 0x0f) | 0x50;
	b[8] = (b[8] & 0x3f) | 0x80;
	return g_strdup_printf ("%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
				b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7],
				b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
}

/* in QEMU's locally administered 52:54:00 block */
gchar *
ppn_domain_mac_for_vm_id (const gchar *vm_id)
{
	guint8 b[3];

	g_return_val_if_fail (vm_id != NULL, NULL);
	ppn_domain_digest ("ppn-mac:", vm_id, b, sizeof b);
	return g_strdup_printf ("52:54:00:%02x:%02x:%02x", b[0], b[1], b[2]);
}

static gboolean
ppn_domain_check_text (const gchar *what, const gchar *value, gsize max, GError **error)
{
	if (strlen (value) > max || !g_utf8_validate (value, -1, NULL)) {
		g_set_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
			     _("Field '%s' must be valid UTF-8 of at most %" G_GSIZE_FORMAT " bytes"), what, max);
		return FALSE;
	}
	for (const gchar *p = value; *p != '\0'; p = g_utf8_next_char (p)) {
		if (g_unichar_iscntrl (g_utf8_get_char (p))) {
			g_set_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
				     _("Field '%s' must not contain control characters"), what);
			return FALSE;
		}
	}
	return TRUE;
}

static gboolean
ppn_domain_check_path (const gchar *what, const gchar *path, GError **error)
{
	if (path == NULL || !g_path_is_absolute (path)) {
		g_set_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
			     _("Field '%s' must be an absolute path"), what);
		return FALSE;
	}
	return ppn_domain_check_text (what, path, PPN_DOMAIN_PATH_MAX, error);
}

static gboolean
ppn_domain_check_ipv4 (const gchar *what, const gchar *addr, GError **error)
{
	struct in_addr in;

	if (addr == NULL || inet_pton (AF_INET, addr, &in) != 1) {
		g_set_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
			     _("Field '%s' must be a numeric IPv4 address"), what);
		return FALSE;
	}
	return TRUE;
}

static gboolean
ppn_domain_check_forward (const PpnForward *fwd, GError **error)
{
	if (g_strcmp0 (fwd->proto, "tcp") != 0 && g_strcmp0 (fwd->proto, "udp") != 0) {
		g_set_error_literal (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
				     _("Field 'port_forwards[].proto' must be \"tcp\" or \"udp\""));
		return FALSE;
	}
	if (fwd->guest_port == 0 || fwd->host_port == 0) {
		g_set_error_literal (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
				     _("A port forward needs a guest port and a host port from 1 to 65535"));
		return FALSE;
	}
	return ppn_domain_check_ipv4 ("port_forwards[].host_address", fwd->host_address, error);
}

static gboolean
ppn_domain_egress_valid (const gchar *egress)
{
	return g_strcmp0 (egress, "nat") == 0 || g_strcmp0 (egress, "none") == 0;
}

static gboolean
ppn_domain_check_time (const gchar *what, const gchar *value, GError **error)
{
	g_autoptr(GDateTime) dt = NULL;

	if (value != NULL && strlen (value) <= 64 && g_utf8_validate (value, -1, NULL))
		dt = g_date_time_new_from_iso8601 (value, NULL);
	if (dt == NULL) {
		g_set_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
			     _("Field '%s' must be an RFC 3339 time"), what);
		return FALSE;
	}
	return TRUE;
}

/* the XML writer escapes whatever it is given; this makes sure nothing
 * that is not what it claims to be gets that far */
gboolean
ppn_domain_spec_validate (const PpnDomainSpec *spec, GError **error)
{
	g_return_val_if_fail (spec != NULL, FALSE);

	if (!ppn_vm_id_validate (spec->vm_id, error) ||
	    !ppn_name_validate ("tenant", spec->tenant, error) ||
	    !ppn_name_validate ("name", spec->name, error) ||
	    !ppn_name_validate ("image", spec->image, error) ||
	    !ppn_name_validate ("node", spec->node, error) ||
	    !ppn_domain_check_time ("created", spec->created, error))
		return FALSE;
	if (g_strcmp0 (spec->accel, "kvm") != 0 && g_strcmp0 (spec->accel, "tcg") != 0) {
		g_set_error_literal (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
				     _("Field 'accel' must be \"kvm\" or \"tcg\""));
		return FALSE;
	}
	if (!ppn_domain_egress_valid (spec->egress)) {
		g_set_error_literal (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
				     _("Field 'egress' must be \"nat\" or \"none\""));
		return FALSE;
	}
	if (spec->vcpus < 1 || spec->vcpus > 4096) {
		g_set_error_literal (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
				     _("Field 'vcpus' must be from 1 to 4096"));
		return FALSE;
	}
	if (spec->memory_mib < 1 || spec->memory_mib > (1u << 24)) {
		g_set_error_literal (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
				     _("Field 'memory_mib' must be from 1 to 16777216"));
		return FALSE;
	}
	if ((spec->kernel == NULL) == (spec->disk == NULL)) {
		g_set_error_literal (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
				     _("A domain boots either a kernel or a disk"));
		return FALSE;
	}
	if (spec->kernel != NULL) {
		if (!ppn_domain_check_path ("kernel", spec->kernel, error))
			return FALSE;
		if (spec->initrd != NULL && !ppn_domain_check_path ("initrd", spec->initrd, error))
			return FALSE;
		if (spec->cmdline != NULL &&
		    !ppn_domain_check_text ("cmdline", spec->cmdline, PPN_DOMAIN_CMDLINE_MAX, error))
			return FALSE;
	} else {
		if (spec->initrd != NULL || spec->cmdline != NULL) {
			g_set_error_literal (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
					     _("A disk boot takes no initrd or cmdline"));
			return FALSE;
		}
		if (!ppn_domain_check_path ("disk", spec->disk, error))
			return FALSE;
	}
	if (!ppn_domain_check_path ("console", spec->console_path, error))
		return FALSE;
	if (spec->forwards != NULL && spec->forwards->len > PPN_DOMAIN_FORWARDS_MAX) {
		g_set_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
			     _("At most %d port forwards are allowed"), PPN_DOMAIN_FORWARDS_MAX);
		return FALSE;
	}
	for (guint i = 0; spec->forwards != NULL && i < spec->forwards->len; i++) {
		if (!ppn_domain_check_forward (g_ptr_array_index (spec->forwards, i), error))
			return FALSE;
	}
	return TRUE;
}

/* the writer's calls fail only when memory runs out; one flag keeps the
 * generator readable */
typedef struct {
	xmlTextWriter *w;
	gboolean ok;
} PpnXmlOut;

static void
ppn_xml_start (PpnXmlOut *o, const gchar *prefix, const gchar *name, const gchar *ns)
{
	if (o->ok && xmlTextWriterStartElementNS (o->w, (const xmlChar *)prefix, (const xmlChar *)name,
						  (const xmlChar *)ns) < 0)
		o->ok = FALSE;
}

static void
ppn_xml_end (PpnXmlOut *o)
{
	if (o->ok && xmlTextWriterEndElement (o->w) < 0)
		o->ok = FALSE;
}

static void
ppn_xml_attr (PpnXmlOut *o, const gchar *name, const gchar *value)
{
	if (o->ok && xmlTextWriterWriteAttribute (o->w, (const xmlChar *)name, (const xmlChar *)value) < 0)
		o->ok = FALSE;
}

static void
ppn_xml_text (PpnXmlOut *o, const gchar *text)
{
	if (o->ok && xmlTextWriterWriteString (o->w, (const xmlChar *)text) < 0)
		o->ok = FALSE;
}

static void
ppn_xml_element (PpnXmlOut *o, const gchar *prefix, const gchar *name, const gchar *text)
{
	ppn_xml_start (o, prefix, name, NULL);
	ppn_xml_text (o, text);
	ppn_xml_end (o);
}

static void
ppn_xml_write_metadata (PpnXmlOut *o, const PpnDomainSpec *spec)
{
	ppn_xml_start (o, NULL, "metadata", NULL);
	ppn_xml_start (o, PPN_XMLNS_VM_PREFIX, "vm", PPN_XMLNS_VM);
	ppn_xml_element (o, PPN_XMLNS_VM_PREFIX, "id", spec->vm_id);
	ppn_xml_element (o, PPN_XMLNS_VM_PREFIX, "tenant", spec->tenant);
	ppn_xml_element (o, PPN_XMLNS_VM_PREFIX, "name", spec->name);
	ppn_xml_element (o, PPN_XMLNS_VM_PREFIX, "image", spec->image);
	ppn_xml_element (o, PPN_XMLNS_VM_PREFIX, "node", spec->node);
	ppn_xml_element (o, PPN_XMLNS_VM_PREFIX, "created", spec->created);
	ppn_xml_element (o, PPN_XMLNS_VM_PREFIX, "egress", spec->egress);
	for (guint i = 0; spec->forwards != NULL && i < spec->forwards->len; i++) {
		PpnForward *fwd = g_ptr_array_index (spec->forwards, i);
		g_autofree gchar *guest_port = g_strdup_printf ("%u", fwd->guest_port);
		g_autofree gchar *host_port = g_strdup_printf ("%u", fwd->host_port);

		ppn_xml_start (o, PPN_XMLNS_VM_PREFIX, "forward", NULL);
		ppn_xml_attr (o, "guest-port", guest_port);
		ppn_xml_attr (o, "proto", fwd->proto);
		ppn_xml_attr (o, "host-address", fwd->host_address);
		ppn_xml_attr (o, "host-port", host_port);
		ppn_xml_end (o);
	}
	ppn_xml_end (o);
	ppn_xml_end (o);
}

static void
ppn_xml_write_os (PpnXmlOut *o, const PpnDomainSpec *spec)
{
	ppn_xml_start (o, NULL, "os", NULL);
	ppn_xml_start (o, NULL, "type", NULL);
	ppn_xml_attr (o, "arch", "x86_64");
	ppn_xml_attr (o, "machine", "pc");
	ppn_xml_text (o, "hvm");
	ppn_xml_end (o);
	if (spec->kernel != NULL) {
		/* the guest learns its id from the kernel command line */
		g_autofree gchar *cmdline = NULL;

		if (spec->cmdline != NULL && spec->cmdline[0] != '\0')
			cmdline = g_strdup_printf ("%s ppn.vm_id=%s", spec->cmdline, spec->vm_id);
		else
			cmdline = g_strdup_printf ("ppn.vm_id=%s", spec->vm_id);
		ppn_xml_element (o, NULL, "kernel", spec->kernel);
		if (spec->initrd != NULL)
			ppn_xml_element (o, NULL, "initrd", spec->initrd);
		ppn_xml_element (o, NULL, "cmdline", cmdline);
	} else {
		ppn_xml_start (o, NULL, "boot", NULL);
		ppn_xml_attr (o, "dev", "hd");
		ppn_xml_end (o);
	}
	ppn_xml_end (o);
}

static void
ppn_xml_write_devices (PpnXmlOut *o, const PpnDomainSpec *spec)
{
	ppn_xml_start (o, NULL, "devices", NULL);
	if (spec->disk != NULL) {
		ppn_xml_start (o, NULL, "disk", NULL);
		ppn_xml_attr (o, "type", "file");
		ppn_xml_attr (o, "device", "disk");
		ppn_xml_start (o, NULL, "driver", NULL);
		ppn_xml_attr (o, "name", "qemu");
		ppn_xml_attr (o, "type", "qcow2");
		ppn_xml_end (o);
		ppn_xml_start (o, NULL, "source", NULL);
		ppn_xml_attr (o, "file", spec->disk);
		ppn_xml_end (o);
		ppn_xml_start (o, NULL, "target", NULL);
		ppn_xml_attr (o, "dev", "vda");
		ppn_xml_attr (o, "bus", "virtio");
		ppn_xml_end (o);
		ppn_xml_end (o);
	}
	/* libvirt adds a USB controller by default; nothing here uses one */
	ppn_xml_start (o, NULL, "controller", NULL);
	ppn_xml_attr (o, "type", "usb");
	ppn_xml_attr (o, "model", "none");
	ppn_xml_end (o);
	ppn_xml_start (o, NULL, "serial", NULL);
	ppn_xml_attr (o, "type", "file");
	ppn_xml_start (o, NULL, "source", NULL);
	ppn_xml_attr (o, "path", spec->console_path);
	ppn_xml_end (o);
	ppn_xml_start (o, NULL, "target", NULL);
	ppn_xml_attr (o, "port", "0");
	ppn_xml_end (o);
	ppn_xml_end (o);
	ppn_xml_start (o, NULL, "memballoon", NULL);
	ppn_xml_attr (o, "model", "none");
	ppn_xml_end (o);
	ppn_xml_end (o);
}

/* libvirt has no element for SLIRP host forwards (see DESIGN.md), so the
 * NIC goes on QEMU's command line; every piece of it is a validated number,
 * address or fixed word, so no value can add an option */
static void
ppn_xml_write_qemu_commandline (PpnXmlOut *o, const PpnDomainSpec *spec)
{
	g_autoptr(GString) netdev = g_string_new ("user,id=ppnnet0");
	g_autofree gchar *mac = ppn_domain_mac_for_vm_id (spec->vm_id);
	g_autofree gchar *device = NULL;

	/* restrict=on: SLIRP routes nothing from the guest, not even to the
	 * host as 10.0.2.2; the hostfwd rules below still reach the guest */
	if (g_strcmp0 (spec->egress, "none") == 0)
		g_string_append (netdev, ",restrict=on");

	for (guint i = 0; spec->forwards != NULL && i < spec->forwards->len; i++) {
		PpnForward *fwd = g_ptr_array_index (spec->forwards, i);
		g_string_append_printf (netdev, ",hostfwd=%s:%s:%u-:%u", fwd->proto, fwd->host_address,
					fwd->host_port, fwd->guest_port);
	}
	device = g_strdup_printf ("virtio-net-pci,netdev=ppnnet0,mac=%s,bus=pci.0,addr=" PPN_DOMAIN_NIC_PCI_ADDR,
				  mac);
	ppn_xml_start (o, "qemu", "commandline", NULL);
	ppn_xml_start (o, "qemu", "arg", NULL);
	ppn_xml_attr (o, "value", "-netdev");
	ppn_xml_end (o);
	ppn_xml_start (o, "qemu", "arg", NULL);
	ppn_xml_attr (o, "value", netdev->str);
	ppn_xml_end (o);
	ppn_xml_start (o, "qemu", "arg", NULL);
	ppn_xml_attr (o, "value", "-device");
	ppn_xml_end (o);
	ppn_xml_start (o, "qemu", "arg", NULL);
	ppn_xml_attr (o, "value", device);
	ppn_xml_end (o);
	ppn_xml_end (o);
}

gchar *
ppn_domain_xml_build (const PpnDomainSpec *spec, GError **error)
{
	g_autoptr(xmlBuffer) buf = NULL;
	g_autoptr(xmlTextWriter) writer = NULL;
	g_autofree gchar *domain_name = NULL;
	g_autofree gchar *uuid = NULL;
	g_autofree gchar *memory = NULL;
	g_autofree gchar *vcpus = NULL;
	PpnXmlOut o = {NULL, TRUE};

	g_return_val_if_fail (spec != NULL, NULL);
	if (!ppn_domain_spec_validate (spec, error))
		return NULL;

	buf = xmlBufferCreate ();
	if (buf != NULL)
		writer = xmlNewTextWriterMemory (buf, 0);
	if (writer == NULL) {
		g_set_error_literal (error, PPN_ERROR, PPN_ERROR_INTERNAL, _("Cannot create an XML writer"));
		return NULL;
	}
	o.w = writer;
	if (xmlTextWriterSetIndent (writer, 1) < 0 || xmlTextWriterSetIndentString (writer, (const xmlChar *)"  ") < 0 ||
	    xmlTextWriterSetQuoteChar (writer, '\'') < 0)
		o.ok = FALSE;

	domain_name = ppn_domain_name_for_vm_id (spec->vm_id);
	uuid = ppn_domain_uuid_for_vm_id (spec->vm_id);
	memory = g_strdup_printf ("%u", spec->memory_mib);
	vcpus = g_strdup_printf ("%u", spec->vcpus);

	ppn_xml_start (&o, NULL, "domain", NULL);
	ppn_xml_attr (&o, "type", g_strcmp0 (spec->accel, "kvm") == 0 ? "kvm" : "qemu");
	ppn_xml_attr (&o, "xmlns:qemu", PPN_XMLNS_QEMU);
	ppn_xml_element (&o, NULL, "name", domain_name);
	ppn_xml_element (&o, NULL, "uuid", uuid);
	ppn_xml_element (&o, NULL, "title", spec->name);
	ppn_xml_write_metadata (&o, spec);
	ppn_xml_start (&o, NULL, "memory", NULL);
	ppn_xml_attr (&o, "unit", "MiB");
	ppn_xml_text (&o, memory);
	ppn_xml_end (&o);
	ppn_xml_element (&o, NULL, "vcpu", vcpus);
	ppn_xml_write_os (&o, spec);
	/* without ACPI libvirt passes -no-acpi: no clean shutdown, and the
	 * guest kernel complains on every boot */
	ppn_xml_start (&o, NULL, "features", NULL);
	ppn_xml_start (&o, NULL, "acpi", NULL);
	ppn_xml_end (&o);
	ppn_xml_end (&o);
	/* no <cpu>: host-passthrough hangs under nested KVM, and TCG wants
	 * the default model */
	ppn_xml_element (&o, NULL, "on_poweroff", "destroy");
	ppn_xml_element (&o, NULL, "on_reboot", "restart");
	ppn_xml_element (&o, NULL, "on_crash", "destroy");
	ppn_xml_write_devices (&o, spec);
	ppn_xml_write_qemu_commandline (&o, spec);
	ppn_xml_end (&o);
	if (o.ok && xmlTextWriterFlush (writer) < 0)
		o.ok = FALSE;
	if (!o.ok) {
		g_set_error_literal (error, PPN_ERROR, PPN_ERROR_INTERNAL, _("Cannot write the domain XML"));
		return NULL;
	}
	g_clear_pointer (&writer, xmlFreeTextWriter);
	return g_strdup_printf ("%s\n", (const gchar *)xmlBufferContent (buf));
}

/* ---- metadata, read back from libvirt ---------------------------------- */

void
ppn_domain_metadata_free (PpnDomainMetadata *meta)
{
	if (meta == NULL)
		return;
	g_free (meta->vm_id);
	g_free (meta->tenant);
	g_free (meta->name);
	g_free (meta->image);
	g_free (meta->node);
	g_free (meta->created);
	g_free (meta->egress);
	g_clear_pointer (&meta->forwards, g_ptr_array_unref);
	g_free (meta);
}

static gboolean
ppn_domain_metadata_bad (GError **error, const gchar *what)
{
	g_set_error (error, PPN_ERROR, PPN_ERROR_INTERNAL,
		     _("The domain's ppn metadata is malformed: %s"), what);
	return FALSE;
}

/* libvirt hands the element back without its namespace; accept ours or none */
static gboolean
ppn_domain_metadata_ns_ok (xmlNode *node)
{
	return node->ns == NULL || g_strcmp0 ((const gchar *)node->ns->href, PPN_XMLNS_VM) == 0;
}

/* the text of an element that holds text only */
static gchar *
ppn_domain_metadata_text (xmlNode *node)
{
	g_autoptr(xmlChar) content = NULL;

	for (xmlNode *c = node->children; c != NULL; c = c->next) {
		if (c->type != XML_TEXT_NODE)
			return NULL;
	}
	if (node->properties != NULL)
		return NULL;
	content = xmlNodeGetContent (node);
	return g_strdup (content != NULL ? (const gchar *)content : "");
}

static gboolean
ppn_domain_metadata_port (xmlNode *node, const gchar *attr, guint16 *out)
{
	g_autoptr(xmlChar) value = xmlGetNoNsProp (node, (const xmlChar *)attr);
	guint64 v;

	if (value == NULL || !g_ascii_string_to_unsigned ((const gchar *)value, 10, 1, 65535, &v, NULL))
		return FALSE;
	*out = (guint16)v;
	return TRUE;
}

static PpnForward *
ppn_domain_metadata_forward (xmlNode *node, GError **error)
{
	static const gchar *const attrs[] = {"guest-port", "proto", "host-address", "host-port", NULL};
	g_autoptr(xmlChar) proto = NULL;
	g_autoptr(xmlChar) addr = NULL;
	g_autoptr(PpnForward) fwd = ppn_forward_new (0, NULL);

	for (xmlAttr *a = node->properties; a != NULL; a = a->next) {
		if (a->ns != NULL || !g_strv_contains (attrs, (const gchar *)a->name)) {
			ppn_domain_metadata_bad (error, _("unknown forward attribute"));
			return NULL;
		}
	}
	if (node->children != NULL) {
		ppn_domain_metadata_bad (error, _("a forward has content"));
		return NULL;
	}
	proto = xmlGetNoNsProp (node, (const xmlChar *)"proto");
	addr = xmlGetNoNsProp (node, (const xmlChar *)"host-address");
	if (!ppn_domain_metadata_port (node, "guest-port", &fwd->guest_port) ||
	    !ppn_domain_metadata_port (node, "host-port", &fwd->host_port) ||
	    proto == NULL || addr == NULL) {
		ppn_domain_metadata_bad (error, _("a forward lacks a port, protocol or address"));
		return NULL;
	}
	fwd->proto = g_strdup ((const gchar *)proto);
	fwd->host_address = g_strdup ((const gchar *)addr);
	if (!ppn_domain_check_forward (fwd, NULL)) {
		ppn_domain_metadata_bad (error, _("a forward has an invalid value"));
		return NULL;
	}
	return g_steal_pointer (&fwd);
}

/* the metadata sits on a node anyone with libvirt access can edit, so it
 * is parsed as untrusted: no DTD, no entities, no network, known elements
 * only, every value validated as it would be on the way in */
PpnDomainMetadata *
ppn_domain_metadata_parse (const gchar *xml, GError **error)
{
	g_autoptr(xmlDoc) doc = NULL;
	g_autoptr(PpnDomainMetadata) meta = g_new0 (PpnDomainMetadata, 1);
	g_autoptr(GError) local = NULL;
	xmlNode *root;
	gsize len;

	g_return_val_if_fail (xml != NULL, NULL);
	len = strlen (xml);
	if (len > PPN_DOMAIN_METADATA_MAX) {
		ppn_domain_metadata_bad (error, _("too large"));
		return NULL;
	}
	doc = xmlReadMemory (xml, (int)len, "metadata.xml", "UTF-8",
			     XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING | XML_PARSE_NOCDATA);
	if (doc == NULL) {
		ppn_domain_metadata_bad (error, _("not well-formed XML"));
		return NULL;
	}
	if (doc->intSubset != NULL || doc->extSubset != NULL) {
		ppn_domain_metadata_bad (error, _("a document type declaration is not allowed"));
		return NULL;
	}
	root = xmlDocGetRootElement (doc);
	if (root == NULL || g_strcmp0 ((const gchar *)root->name, "vm") != 0 || !ppn_domain_metadata_ns_ok (root)) {
		ppn_domain_metadata_bad (error, _("the root element is not ppn:vm"));
		return NULL;
	}
	meta->forwards = ppn_forwards_new ();
	for (xmlNode *c = root->children; c != NULL; c = c->next) {
		const gchar *name = (const gchar *)c->name;
		gchar **slot = NULL;

		if (c->type == XML_TEXT_NODE && xmlIsBlankNode (c))
			continue;
		if (c->type == XML_COMMENT_NODE)
			continue;
		if (c->type != XML_ELEMENT_NODE || !ppn_domain_metadata_ns_ok (c)) {
			ppn_domain_metadata_bad (error, _("unexpected content"));
			return NULL;
		}
		if (g_strcmp0 (name, "forward") == 0) {
			PpnForward *fwd = ppn_domain_metadata_forward (c, error);
			if (fwd == NULL)
				return NULL;
			g_ptr_array_add (meta->forwards, fwd);
			if (meta->forwards->len > PPN_DOMAIN_FORWARDS_MAX) {
				ppn_domain_metadata_bad (error, _("too many forwards"));
				return NULL;
			}
			continue;
		}
		if (g_strcmp0 (name, "id") == 0)
			slot = &meta->vm_id;
		else if (g_strcmp0 (name, "tenant") == 0)
			slot = &meta->tenant;
		else if (g_strcmp0 (name, "name") == 0)
			slot = &meta->name;
		else if (g_strcmp0 (name, "image") == 0)
			slot = &meta->image;
		else if (g_strcmp0 (name, "node") == 0)
			slot = &meta->node;
		else if (g_strcmp0 (name, "created") == 0)
			slot = &meta->created;
		else if (g_strcmp0 (name, "egress") == 0)
			slot = &meta->egress;
		if (slot == NULL) {
			ppn_domain_metadata_bad (error, _("unknown element"));
			return NULL;
		}
		if (*slot != NULL) {
			ppn_domain_metadata_bad (error, _("an element appears twice"));
			return NULL;
		}
		*slot = ppn_domain_metadata_text (c);
		if (*slot == NULL) {
			ppn_domain_metadata_bad (error, _("an element holds more than text"));
			return NULL;
		}
	}
	if (!ppn_vm_id_validate (meta->vm_id, &local) ||
	    !ppn_name_validate ("tenant", meta->tenant, &local) ||
	    !ppn_name_validate ("name", meta->name, &local) ||
	    !ppn_name_validate ("image", meta->image, &local) ||
	    (meta->node != NULL && !ppn_name_validate ("node", meta->node, &local)) ||
	    (meta->created != NULL && !ppn_domain_check_time ("created", meta->created, &local))) {
		ppn_domain_metadata_bad (error, local->message);
		return NULL;
	}
	/* domains made before the policy was recorded have SLIRP's default */
	if (meta->egress == NULL)
		meta->egress = g_strdup ("nat");
	if (!ppn_domain_egress_valid (meta->egress)) {
		ppn_domain_metadata_bad (error, _("egress is neither nat nor none"));
		return NULL;
	}
	return g_steal_pointer (&meta);
}
