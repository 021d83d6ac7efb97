"""The desk's rules file: any subset over the defaults; an invalid file is refused with
one readable line; the rules must stay complete (a catch-all route, a standard per
return reason, templates with known placeholders)."""

from __future__ import annotations

import pytest
from service_desk.rules import RulesFileError, load_rules


def write(tmp_path, text):
    path = tmp_path / "desk.toml"
    path.write_text(text)
    return path


def test_a_subset_overrides_the_defaults(tmp_path):
    rules = load_rules(write(tmp_path, "[sla]\nfirst_response_s = { chat = 30 }\n"))
    assert rules.sla.first_response("chat", "new") == 30
    assert rules.sla.resolution("delivery", "vip") == 12 * 3600  # defaults kept, VIP half
    assert rules.route("delivery", "new").queue == "logistics"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "[sla]\nfirst_response_s = { pigeon = 5 }\n",
            "sla: Value error, first_response_s: unknown ['pigeon']",
        ),
        (
            '[[routes]]\ntype = "delivery"\nqueue = "logistics"\n',
            "the last route must match any ticket",
        ),
        (
            "return_window_days = -1\n",
            "return_window_days: Input should be greater than or equal to 0",
        ),
        (
            '[[templates]]\nid = "x"\ntype = "other"\ntitle = "t"\ntext = "{secret}"\n',
            "unknown placeholders ['secret']",
        ),
        ("sla = [", "not valid TOML"),
    ],
)
def test_an_invalid_file_is_refused_with_one_line(tmp_path, text, message):
    with pytest.raises(RulesFileError) as refused:
        load_rules(write(tmp_path, text))
    assert message in str(refused.value) and "\n" not in str(refused.value)
