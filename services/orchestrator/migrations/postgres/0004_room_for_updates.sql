-- Room on each page for a recommendation's later versions.
--
-- A recommendation is written once and changed at least three times over its life
-- (escalated, acknowledged, ended), each change a new version of the whole row. A change
-- stays on the row's page (a HOT update, which writes no index entry) only if the page has
-- room for the new version. At a fill factor of 70 about one change in four found no room
-- and wrote a new entry in each of the table's three indexes; at 50 nearly all of them
-- stay on their page. The table takes about two fifths more pages.
--
-- Only pages written from now on are filled to the new factor; the pages already there
-- keep their rows as they are. Replicas may run while this runs.

ALTER TABLE recommendations SET (fillfactor = 50);
