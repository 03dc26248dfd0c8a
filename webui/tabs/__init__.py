"""One module per tab, each with one ``build(ctx)`` that places the tab and wires its events.

webui/layout.py builds the header, then calls each tab's ``build`` in the order of the tab bar
(``layout.TABS``), handing every one the same :class:`~webui.tabs.context.TabContext`.
"""
