"""The report's document model: Markdown passes text through, HTML escapes it and renders the
few inline marks the report uses."""

from cryoprior.report.document import Document


def test_html_renders_bold_code_and_verdicts_and_escapes_the_rest():
    doc = Document()
    doc.heading(1, "A <title>")
    doc.bullets(["**Plain RELION** (`relion`): PASS", "x < y & **FAIL**"])
    doc.table(["a", "b"], [["1", "**FAIL**"]])
    page = doc.html("t")
    assert "**" not in page  # Markdown's bold never shows literally (it did in the modes list)
    assert "<strong>Plain RELION</strong>" in page
    assert "<code>relion</code>" in page
    assert '<span class="pass">PASS</span>' in page
    assert page.count('<span class="fail">FAIL</span>') == 2
    assert "x &lt; y &amp;" in page and "<h1>A &lt;title&gt;</h1>" in page


def test_markdown_keeps_the_source_text():
    doc = Document()
    doc.para("**bold** and `code`")
    doc.table(["a"], [["1"]])
    doc.image("figures/x.png", "x")
    assert doc.markdown() == "**bold** and `code`\n\n| a |\n|---|\n| 1 |\n\n![x](figures/x.png)\n"
