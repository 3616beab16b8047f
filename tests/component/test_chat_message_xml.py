"""The template that serialises patron lines for the component stream
(`chat_message_xml`): whatever the text, one well-formed message whose body and
attributes read back exactly as given, after `strip_xml_illegal`."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from component.core.text import strip_xml_illegal
from component.xmpp_delivery import COMPONENT_NS, Outgoing, chat_message_xml

HOSTILE = [
    "plain",
    "</body></message><message to='victim@example.org'><body>spoofed",
    "<![CDATA[x]]> ]]> &amp; &#0; &lt; <!-- c --> <?pi x?>",
    "quotes \" ' and `backticks`",
    "controls \x00\x01\x08\x0b\x0c\x1b[31m\x7f end",
    "lone surrogates \ud800 \udfff, a pair \U0001f600",
    "non-characters \ufffe\uffff",
    "white space \t \n \r\n",
    "",
]


def _read(wire: str) -> ET.Element:
    # The stream declares the default namespace; the template leaves it implicit.
    return ET.fromstring(f"<s xmlns='{COMPONENT_NS}'>{wire}</s>")[0]


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_text_reads_back_as_text(text: str) -> None:
    clean = strip_xml_illegal(text)
    wire = chat_message_xml("ann@example.org/pc", "g-1@desk.example.org", clean, "rd-1-2")
    wire.encode("utf-8")  # no lone surrogate reaches the socket
    message = _read(wire)
    assert message.tag == f"{{{COMPONENT_NS}}}message"
    assert [child.tag for child in message] == [f"{{{COMPONENT_NS}}}body"]
    assert message.findtext(f"{{{COMPONENT_NS}}}body") == clean.replace("\r\n", "\n")
    assert dict(message.attrib) == {
        "type": "chat",
        "to": "ann@example.org/pc",
        "from": "g-1@desk.example.org",
        "id": "rd-1-2",
    }


@pytest.mark.parametrize("value", ["a'b\"c", "x<y>&z", "tab\there\nline"])
def test_hostile_attribute_values_read_back(value: str) -> None:
    message = _read(chat_message_xml(value, value, "hi", value))
    assert (message.get("to"), message.get("from"), message.get("id")) == (value,) * 3


def test_the_stanza_of_a_wire_form_is_the_same_message() -> None:
    out = Outgoing(wire=chat_message_xml("ann@example.org", "g-1@desk", "a < b & c", "rd-7-1"))
    stanza = out.stanza
    assert (stanza["id"], str(stanza["to"]), str(stanza["from"]), stanza["type"]) == (
        "rd-7-1",
        "ann@example.org",
        "g-1@desk",
        "chat",
    )
    assert stanza["body"] == "a < b & c"


def test_an_outgoing_needs_something_to_write() -> None:
    with pytest.raises(ValueError, match="stanza or its wire form"):
        Outgoing()
