document.querySelectorAll('input.only-failed').forEach(function (box) {
  box.addEventListener('change', function () {
    var table = document.getElementById(box.dataset.table);
    table.querySelectorAll('tbody tr').forEach(function (row) {
      row.classList.toggle('hidden', box.checked && row.dataset.passed === 'true');
    });
  });
});
document.body.dataset.ready = 'true';
