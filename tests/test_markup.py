"""User Markdown rendered by markdown-it-py and sanitised by nh3."""
from __future__ import annotations

import re

from webapp.services import markup


def test_the_subset_renders_and_nothing_else_survives():
    html = markup.render("**bold** _it_ `x<y` [pool](https://pool.example/a?b=1)")
    assert html == ('<p><strong>bold</strong> <em>it</em> <code>x&lt;y</code> '
                    '<a href="https://pool.example/a?b=1" rel="nofollow noopener noreferrer">pool</a></p>\n')


def test_scripts_handlers_and_dangerous_links_do_not_survive():
    for attack in ("<script>alert(1)</script>", "<img src=x onerror=alert(1)>",
                   "[x](javascript:alert(1))", '<a href="javascript:alert(1)">x</a>',
                   "[x](data:text/html;base64,PHNjcmlwdD4=)"):
        html = markup.render(attack)
        assert "<script" not in html and not re.search(r"<[a-z]+[^>]*\son\w+=", html)
        assert not re.search(r'<a [^>]*href="(javascript|data)', html)
        assert "<img" not in html


def test_blocks_stay_plain_text():
    assert markup.render("# title\n- item") == "<p># title<br>\n- item</p>\n"


def test_mentions_are_distinct_user_ids_in_order():
    assert markup.mentions("hi @Satoshi_1, @bob. mail e@x.org and @Satoshi_1 @ab") == ["Satoshi_1", "bob"]
