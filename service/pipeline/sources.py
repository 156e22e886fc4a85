"""Who gives a label: a model (teacher, student) or a person. Two kinds of label come from people: a reviewer's
answer (or an imported annotation), and a lead's adjudication of an item whose answers disagreed or contradicted
an accepted machine label. Both are truth for certifying, training and exporting."""

HUMAN = "human"
ADJUDICATED = "adjudicated"
HUMAN_SOURCES = (HUMAN, ADJUDICATED)
