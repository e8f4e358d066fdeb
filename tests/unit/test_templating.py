"""esr.core.templating: placeholders, JSON paths and response conditions (nothing is evaluated)."""

from __future__ import annotations

import re

import pytest

from esr.core.templating import Condition, JsonPath, Template, render_value, template_names

CONTEXT = {
    "user": {"first": "Ada", "last": "Lovelace", "index": 3},
    "data": {"ssn": "123-45-6789", "wages": 4200, "flag": True, "tags": ["a", "b"], "nested": {"x": 1.5}},
    "vars": {"claim_id": "c-17"},
    "run": {"id": "run-1"},
}


# -- Template ----------------------------------------------------------------------------------
def test_render_path_placeholder() -> None:
    t = Template.compile("/claims/{{ vars.claim_id }}")
    assert t.names == ("vars.claim_id",)
    assert not t.is_static
    assert t.render(CONTEXT) == "/claims/c-17"


def test_render_several_placeholders_and_spacing() -> None:
    t = Template.compile("{{user.first}}-{{   user.last }} ({{ run.id }})")
    assert t.names == ("user.first", "user.last", "run.id")
    assert t.render(CONTEXT) == "Ada-Lovelace (run-1)"


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("{{ data.wages }}", 4200),
        ("{{data.flag}}", True),
        ("{{ data.tags }}", ["a", "b"]),
        ("{{ data.nested.x }}", 1.5),
        ("{{ data.nested }}", {"x": 1.5}),
        ("{{ user.index }}", 3),
    ],
)
def test_a_single_placeholder_keeps_the_type(text: str, value: object) -> None:
    rendered = Template.compile(text).render(CONTEXT)
    assert rendered == value
    assert type(rendered) is type(value)


def test_placeholders_inside_text_become_strings() -> None:
    assert Template.compile("wages={{ data.wages }}").render(CONTEXT) == "wages=4200"
    assert Template.compile("{{ data.flag }}!").render(CONTEXT) == "True!"


def test_static_template() -> None:
    t = Template.compile("/health")
    assert t.is_static
    assert t.names == ()
    assert t.render({}) == "/health"
    assert t.label() == "/health"


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("/claims/{{ vars.claim_id }}", "/claims/{claim_id}"),
        ("/u/{{ user.index }}/c/{{vars.claim_id}}", "/u/{index}/c/{claim_id}"),
        ("/x/{{ data.nested.x }}", "/x/{x}"),
    ],
)
def test_label_is_low_cardinality(text: str, label: str) -> None:
    assert Template.compile(text).label() == label


def test_missing_value_is_a_key_error_naming_the_placeholder() -> None:
    with pytest.raises(KeyError, match=r"vars\.nope.*'nope'"):
        Template.compile("/c/{{ vars.nope }}").render(CONTEXT)
    with pytest.raises(KeyError, match="'deeper'"):
        Template.compile("{{ data.wages.deeper }}").render(CONTEXT)  # 4200 is not a mapping


@pytest.mark.parametrize(
    ("text", "column"),
    [
        ("{{ foo.bar }}", 1),  # unknown namespace
        ("/x/{{ secrets }}", 4),
        ("/x/{{ user. }}", 4),
        ("{{ user ssn }}", 1),
        ("ab{{ 1abc }}", 3),
        ("{{ }}", 1),
        ("{{ user.a-b }}", 1),
        ("/a/{{ vars.id }}/{{ os.environ }}", 18),
    ],
)
def test_bad_placeholders_name_the_column(text: str, column: int) -> None:
    with pytest.raises(ValueError) as info:
        Template.compile(text)
    message = str(info.value)
    assert f"at column {column}" in message
    assert "user, data, vars, run" in message


@pytest.mark.parametrize("text", ["{{ user.ssn", "/x/{{ user.ssn }", "{{ user.ssn }} {{"])
def test_unclosed_placeholders(text: str) -> None:
    with pytest.raises(ValueError, match="'{{'|must be a dotted"):
        Template.compile(text)


def test_render_value_and_template_names_walk_json() -> None:
    body = {"ssn": "{{ data.ssn }}", "wages": "{{ data.wages }}", "meta": ["{{ run.id }}", 3, None], "n": 1}
    assert render_value(body, CONTEXT) == {"ssn": "123-45-6789", "wages": 4200, "meta": ["run-1", 3, None], "n": 1}
    assert template_names(body) == ["data.ssn", "data.wages", "run.id"]
    with pytest.raises(ValueError):
        template_names({"a": ["{{ nope.x }}"]})


# -- JsonPath ------------------------------------------------------------------------------------
DOC = {"claim": {"id": 7, "status": "paid"}, "items": [{"id": "a", "n": 1}, {"id": "b", "n": 2}], "zero": 0}


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("$.claim.id", 7),
        ("$.claim", {"id": 7, "status": "paid"}),
        ("$.items[1].id", "b"),
        ("$.items[*].id", "a"),  # the first match
        ("$.zero", 0),
        ("$", DOC),
    ],
)
def test_jsonpath_find(path: str, value: object) -> None:
    assert JsonPath.compile(path).find(DOC) == value


def test_jsonpath_missing_gives_the_default() -> None:
    path = JsonPath.compile("$.claim.nope")
    assert path.find(DOC) is None
    sentinel = object()
    assert path.find(DOC, sentinel) is sentinel
    assert JsonPath.compile("$.items[5].id").find(DOC, "d") == "d"


def test_jsonpath_must_start_with_dollar() -> None:
    with pytest.raises(ValueError, match=r"starts with '\$'.*'claim\.id'"):
        JsonPath.compile("claim.id")


@pytest.mark.parametrize("path", ["$..", "$.[", "$.a[?(@.x)]"])
def test_jsonpath_invalid(path: str) -> None:
    with pytest.raises(ValueError, match="invalid JSON path"):
        JsonPath.compile(path)


# -- Condition -----------------------------------------------------------------------------------
def holds(condition: str, document: object) -> bool:
    return Condition.compile(condition).holds(document)


@pytest.mark.parametrize(
    ("condition", "document", "expected"),
    [
        ("$.status == 'paid'", {"status": "paid"}, True),
        ("$.status == 'paid'", {"status": "pending"}, False),
        ('$.status == "paid"', {"status": "paid"}, True),
        ("$.status != 'paid'", {"status": "pending"}, True),
        ("$.status != 'paid'", {"status": "paid"}, False),
        ("$.n < 3", {"n": 2}, True),
        ("$.n < 3", {"n": 3}, False),
        ("$.n <= 3", {"n": 3}, True),
        ("$.n > 3", {"n": 3.5}, True),
        ("$.n >= 3", {"n": 2.99}, False),
        ("$.n > -1.5e1", {"n": -14}, True),
        ("$.n == 2", {"n": 2}, True),  # int vs the literal 2.0
        ("$.items[0].status == 'paid'", {"items": [{"status": "paid"}]}, True),
        ("$.ok == true", {"ok": True}, True),
        ("$.ok == false", {"ok": True}, False),
        ("$.x == null", {"x": None}, True),
        ("$.s=='a'", {"s": "a"}, True),  # no spaces needed
    ],
)
def test_comparisons(condition: str, document: object, expected: bool) -> None:
    assert holds(condition, document) is expected


@pytest.mark.parametrize(
    ("condition", "document", "expected"),
    [
        ("$.status in ['paid', 'denied']", {"status": "denied"}, True),
        ("$.status in ['paid', 'denied']", {"status": "pending"}, False),
        ('$.status in ["paid"]', {"status": "paid"}, True),
        ("$.n in [1, 2, 3]", {"n": 2}, True),
        ("$.n in []", {"n": 2}, False),
        ("$.status not in ['paid', 'denied']", {"status": "pending"}, True),
        ("$.status not in ['paid', 'denied']", {"status": "paid"}, False),
    ],
)
def test_membership(condition: str, document: object, expected: bool) -> None:
    assert holds(condition, document) is expected


@pytest.mark.parametrize(
    ("a", "b", "c", "expected"),
    [
        (1, 0, 0, True),  # a or (b and c)
        (0, 1, 0, False),
        (0, 1, 1, True),
        (0, 0, 1, False),
    ],
)
def test_and_binds_tighter_than_or(a: int, b: int, c: int, expected: bool) -> None:
    assert holds("$.a == 1 or $.b == 1 and $.c == 1", {"a": a, "b": b, "c": c}) is expected


@pytest.mark.parametrize(
    ("a", "b", "c", "expected"),
    [(1, 0, 0, False), (1, 0, 1, True), (0, 1, 1, True), (0, 0, 1, False)],
)
def test_parentheses_group(a: int, b: int, c: int, expected: bool) -> None:
    assert holds("($.a == 1 or $.b == 1) and $.c == 1", {"a": a, "b": b, "c": c}) is expected


def test_and_or_chains() -> None:
    doc = {"a": 1, "b": 2, "c": 3}
    assert holds("$.a == 1 and $.b == 2 and $.c == 3", doc)
    assert not holds("$.a == 1 and $.b == 2 and $.c == 4", doc)
    assert holds("$.a == 9 or $.b == 9 or $.c == 3", doc)
    assert holds("(($.a == 1))", doc)


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("$.status == 'paid'", False),
        ("$.n < 3", False),
        ("$.status in ['paid']", False),
        ("$.status not in ['paid']", True),
    ],
)
def test_missing_path(condition: str, expected: bool) -> None:
    assert holds(condition, {"other": 1}) is expected
    assert holds(condition, None) is expected  # a body that is not JSON


def test_missing_path_negations_agree() -> None:
    # "not equal to 'paid'" and "not one of ['paid']" must say the same about a missing value;
    # today `!=` is False while `not in` is True.
    assert holds("$.status != 'paid'", {}) == holds("$.status not in ['paid']", {})


@pytest.mark.parametrize(
    ("condition", "document"),
    [
        ("$.status < 3", {"status": "paid"}),
        ("$.n >= 'a'", {"n": 3}),
        ("$.n > 1", {"n": None}),
        ("$.n < 1", {"n": [0]}),
        ("$.n == '3'", {"n": 3}),
        ("$.n in [1]", {"n": "1"}),
        ("$.n <= 2", {"n": {"a": 1}}),
    ],
)
def test_type_mismatch_is_false_not_a_crash(condition: str, document: object) -> None:
    assert holds(condition, document) is False


@pytest.mark.parametrize(
    ("condition", "document"),
    [("$.paid == 1", {"paid": True}), ("$.n == true", {"n": 1}), ("$.n in [0]", {"n": False})],
)
def test_json_booleans_are_not_numbers(condition: str, document: object) -> None:
    # JSON true and 1 are different types (RFC 9535 compares them as unequal); Python's
    # True == 1 leaks through today.
    assert holds(condition, document) is False


@pytest.mark.parametrize(
    ("condition", "column"),
    [
        ("$.status = 'paid'", 10),
        ("status == 'paid'", 1),
        ("$.a in 'x'", 8),
        ("$.a == 'x' or or $.b == 1", 15),
        ("$.a[ == 1", 4),
    ],
)
def test_parse_errors_are_value_errors_with_the_column(condition: str, column: int) -> None:
    with pytest.raises(ValueError) as info:
        Condition.compile(condition)
    message = str(info.value)
    assert f"at column {column}:" in message
    assert repr(condition) in message


def test_parse_error_at_the_end_points_after_the_text() -> None:
    # An unfinished condition: the caret belongs after the last character (column len + 1),
    # not at the start of the last token.
    text = "$.a == 'x' and"
    with pytest.raises(ValueError) as info:
        Condition.compile(text)
    assert f"at column {len(text) + 1}:" in str(info.value)


def test_bad_json_path_inside_a_condition() -> None:
    with pytest.raises(ValueError, match=re.escape("invalid condition '$.. == 1'") + ".*invalid JSON path"):
        Condition.compile("$.. == 1")
