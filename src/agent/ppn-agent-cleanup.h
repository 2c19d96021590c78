#pragma once

/* g_autoptr() cleanups for the foreign types only the agent uses */
#include <glib.h>
#include <libvirt/libvirt.h>
#include <libxml/tree.h>
#include <libxml/xmlwriter.h>
#include <libxml/xpath.h>

G_BEGIN_DECLS

G_DEFINE_AUTOPTR_CLEANUP_FUNC (virConnect, virConnectClose)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (virDomain, virDomainFree)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (xmlTextWriter, xmlFreeTextWriter)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (xmlBuffer, xmlBufferFree)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (xmlDoc, xmlFreeDoc)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (xmlXPathContext, xmlXPathFreeContext)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (xmlXPathObject, xmlXPathFreeObject)

/* xmlFree is a variable holding a function pointer, not a function */
static inline void
ppn_xml_char_free (xmlChar *str)
{
	if (str != NULL)
		xmlFree (str);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC (xmlChar, ppn_xml_char_free)

G_END_DECLS
