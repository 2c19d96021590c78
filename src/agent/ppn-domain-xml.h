#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define PPN_DOMAIN_PREFIX "ppn-"
#define PPN_XMLNS_VM "https://ppn.dev/xmlns/vm/1"
#define PPN_XMLNS_VM_PREFIX "ppn"

/* everything one domain's XML is made of; every string is validated by
 * ppn_domain_xml_build() before any XML is written */
typedef struct {
	gchar *vm_id;	/* 16 lower-case hex digits */
	gchar *tenant;	/* ppn_name_validate() */
	gchar *name;	/* the tenant's name for the VM */
	gchar *image;	/* catalog name */
	gchar *node;	/* node id */
	gchar *created; /* RFC 3339 */
	gchar *accel;	/* "kvm" or "tcg" */
	gchar *egress;	/* "nat" or "none" (restrict=on); the effective policy */
	guint vcpus;
	guint memory_mib;
	gchar *kernel; /* absolute paths; kernel boot or disk boot */
	gchar *initrd;
	gchar *cmdline;
	gchar *disk; /* the per-VM qcow2 overlay */
	gchar *console_path;
	GPtrArray *forwards; /* of PpnForward, with host_address/host_port */
} PpnDomainSpec;

PpnDomainSpec *ppn_domain_spec_new (void);
void ppn_domain_spec_free (PpnDomainSpec *spec);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (PpnDomainSpec, ppn_domain_spec_free)

gboolean ppn_domain_spec_validate (const PpnDomainSpec *spec, GError **error);
gchar *ppn_domain_xml_build (const PpnDomainSpec *spec, GError **error);
gchar *ppn_domain_name_for_vm_id (const gchar *vm_id);
gchar *ppn_domain_uuid_for_vm_id (const gchar *vm_id);
gchar *ppn_domain_mac_for_vm_id (const gchar *vm_id);

/* what a domain's <ppn:vm> metadata says, read back from libvirt */
typedef struct {
	gchar *vm_id;
	gchar *tenant;
	gchar *name;
	gchar *image;
	gchar *node;
	gchar *created;
	gchar *egress; /* "nat" or "none"; "nat" for domains made before it was recorded */
	GPtrArray *forwards; /* of PpnForward */
} PpnDomainMetadata;

PpnDomainMetadata *ppn_domain_metadata_parse (const gchar *xml, GError **error);
void ppn_domain_metadata_free (PpnDomainMetadata *meta);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (PpnDomainMetadata, ppn_domain_metadata_free)

G_END_DECLS
